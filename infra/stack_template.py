"""Prints template.yaml as CloudFormation would deploy it: the AWS::LanguageExtensions transform
(Fn::ForEach over the agent log groups) and the AWS::Serverless transform applied, with the SAM CLI's
own code, for given parameter values. Each nested stack it creates from a local template (an
AWS::Serverless::Application whose Location is a file) is transformed too and printed under
"NestedStacks", keyed by the nested stack's logical id.

The template tests evaluate the result: every `${...}` resolved, the dashboard body validated, IAM
policies evaluated against the calls each function makes. Needs the tools of infra/requirements.txt.

usage: stack_template.py TEMPLATE [PARAMETERS_JSON]
"""

import copy
import json
import os
import sys

import re

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

REGION, ACCOUNT, STACK = "us-east-1", "123456789012", "voicelake"


class NoManagedPolicies:
    """The template names no managed policy; a lookup would need an account."""

    def load(self):
        return {}


def substitute(fragment, identifier, value):
    """The fragment of one loop iteration, as the AWS::LanguageExtensions transform documents it:
    `Ref` to the identifier and `${identifier}` in `Fn::Sub` text become the value; in keys,
    `${identifier}` is the value and `&{identifier}` the value without its non-alphanumerics. Every
    other intrinsic is left for CloudFormation (the SAM CLI's own local expansion resolves more than
    that, which is not what is deployed)."""
    if isinstance(fragment, dict):
        if list(fragment) == ["Ref"] and fragment["Ref"] == identifier:
            return value
        out = {}
        for k, v in fragment.items():
            k = k.replace("${" + identifier + "}", value).replace("&{" + identifier + "}", re.sub(r"[^A-Za-z0-9]", "", value))
            if k == "Fn::Sub":
                v = (
                    v.replace("${" + identifier + "}", value)
                    if isinstance(v, str)
                    else [v[0].replace("${" + identifier + "}", value)] + [substitute(x, identifier, value) for x in v[1:]]
                )
                out[k] = v
            else:
                out[k] = substitute(v, identifier, value)
        return out
    if isinstance(fragment, list):
        return [substitute(x, identifier, value) for x in fragment]
    return fragment


def expand_loops(section, template, parameters):
    out = {}
    for key, value in section.items():
        if not key.startswith("Fn::ForEach::"):
            out[key] = value
            continue
        identifier, collection, fragment = value
        if isinstance(collection, dict) and list(collection) == ["Ref"]:
            name = collection["Ref"]
            given = parameters.get(name, template["Parameters"][name].get("Default", ""))
            collection = given if isinstance(given, list) else [x.strip() for x in str(given).split(",") if x.strip()]
        for item in collection:
            out.update(expand_loops(substitute(fragment, identifier, item), template, parameters))
    return out


def expand(path, parameters):
    with open(path) as f:
        template = yaml_parse(f.read())
    template["Resources"] = expand_loops(template["Resources"], template, parameters)
    transforms = template.get("Transform")
    if isinstance(transforms, list):
        transforms = [t for t in transforms if t != "AWS::LanguageExtensions"]
        template["Transform"] = transforms[0] if len(transforms) == 1 else transforms
    elif transforms == "AWS::LanguageExtensions":
        del template["Transform"]
    nested = {}
    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function":
            # Packaging replaces the code folder with an S3 object; the translator insists on one.
            props["CodeUri"] = f"s3://deployment-bucket/{logical_id}.zip"
        if resource.get("Type") == "AWS::Serverless::Application" and isinstance(props.get("Location"), str):
            local = os.path.join(os.path.dirname(path), props["Location"])
            nested[logical_id] = {"Template": local, "Parameters": copy.deepcopy(props.get("Parameters", {}))}
            props["Location"] = f"https://deployment-bucket.s3.amazonaws.com/{logical_id}.yaml"
    if "Transform" in template:
        template = transform(template, parameters, NoManagedPolicies())
    return template, nested


def main():
    path = sys.argv[1]
    parameters = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    os.environ.setdefault("AWS_REGION", REGION)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    template, nested = expand(path, parameters)
    template["NestedStacks"] = {}
    for logical_id, stack in nested.items():
        child, _ = expand(stack["Template"], {})
        template["NestedStacks"][logical_id] = {"Parameters": stack["Parameters"], "Template": child}
    json.dump(template, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
