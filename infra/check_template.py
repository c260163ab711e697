"""Offline checks of infra/template.yaml beyond cfn-lint: run the SAM transform
(aws-sam-translator) and look for dependency cycles between resources, which CloudFormation
rejects at deploy time. Usage: python infra/check_template.py infra/template.yaml"""
import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


class NoManagedPolicies:
    def get_managed_policy_map(self):
        return {}


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                target = v[0] if isinstance(v, list) else str(v).split(".")[0]
                out.add(target)
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                import re
                for m in re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}", text):
                    out.add(m)
                if isinstance(v, list):
                    refs(v[1], out)
            else:
                refs(v, out)
    elif isinstance(node, list):
        for x in node:
            refs(x, out)


def main(path):
    tpl, problems = decode(path)
    if problems:
        for p in problems:
            print(p)
        return 1
    # As `sam package` would: local code paths become S3 locations.
    for body in tpl.get("Resources", {}).values():
        props = body.get("Properties", {})
        if body.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://placeholder-bucket/" + props["CodeUri"].strip("./").replace("/", "-")
    out = transform(tpl, {}, NoManagedPolicies())
    res = out["Resources"]
    graph = {}
    for name, body in res.items():
        deps = set()
        refs(body.get("Properties", {}), deps)
        dep_on = body.get("DependsOn", [])
        deps.update([dep_on] if isinstance(dep_on, str) else dep_on)
        graph[name] = {d for d in deps if d in res}
    seen, stack, cycles = set(), [], []

    def visit(n):
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for d in sorted(graph[n]):
            visit(d)
        stack.pop()

    for n in sorted(graph):
        visit(n)
    for c in cycles:
        print("circular dependency: " + " -> ".join(c))
    print(f"template: {len(res)} resources after the SAM transform, {len(cycles)} cycles")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "infra/template.yaml"))
