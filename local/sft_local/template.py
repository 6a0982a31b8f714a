"""Reads template.yaml (CloudFormation short tags included) and resolves the
intrinsic functions the stack uses, so the local stack is built from the same
file that deploys to AWS: names, key schemas, environment, substitutions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TAG_FUNCTIONS = {
    "Ref": "Ref",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "If": "Fn::If",
    "Not": "Fn::Not",
    "Equals": "Fn::Equals",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
}
SUB_VARIABLE = re.compile(r"\$\{([A-Za-z0-9:._]+)\}")


class _TemplateLoader(yaml.SafeLoader):
    """A YAML loader that turns ``!Ref x`` into ``{"Ref": "x"}`` and so on."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = TAG_FUNCTIONS.get(suffix)
    if name is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown tag !{suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(None, None, f"bad !{suffix}", node.start_mark)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_TemplateLoader)
    return template


@dataclass
class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::If and condition functions."""

    parameters: dict[str, str]
    pseudo: dict[str, str]
    conditions: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        for table in (self.parameters, self.pseudo, self.refs):
            if name in table:
                return table[name]
        raise KeyError(f"unresolved Ref {name}")

    def get_att(self, resource: str, attribute: str) -> str:
        try:
            return self.attributes[(resource, attribute)]
        except KeyError:
            raise KeyError(f"unresolved Fn::GetAtt {resource}.{attribute}") from None

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = self._functions().get(key)
            if handler is not None:
                return handler(argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self.ref,
            "Fn::GetAtt": lambda args: self.get_att(args[0], args[1]),
            "Fn::Sub": self._sub,
            "Fn::If": lambda args: self.resolve(args[1] if self.condition(args[0]) else args[2]),
            "Fn::Not": lambda args: not self.resolve(args[0]),
            "Fn::Equals": lambda args: self.resolve(args[0]) == self.resolve(args[1]),
            "Fn::Join": lambda args: args[0].join(str(self.resolve(v)) for v in args[1]),
            "Condition": self.condition,
        }

    def _sub(self, argument: Any) -> str:
        text, variables = (
            (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        )
        local = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return self.get_att(resource, attribute)
            return self.ref(name)

        return SUB_VARIABLE.sub(replace, text)


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """Template defaults with overrides applied; unknown overrides are an error."""
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise KeyError(f"template.yaml has no parameter(s) {', '.join(sorted(unknown))}")
    values = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
    values.update(overrides)
    return values


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def function_environment(template: dict[str, Any], logical: str) -> dict[str, Any]:
    """A function's environment variables as the template writes them, Globals included."""
    globals_env = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    own = template["Resources"][logical]["Properties"].get("Environment", {}).get("Variables", {})
    return {**globals_env, **own}


def offline_environments(
    template: dict[str, Any],
    region: str = "us-east-1",
    account: str = "123456789012",
    stack_name: str = "sft-offline",
) -> dict[str, dict[str, str]]:
    """Each function folder's environment as the template sets it, with the parameters'
    defaults and a fake name or ARN for every resource: what a handler finds at import,
    without a stack."""
    resolver = Resolver(
        parameters=parameter_values(template, {}),
        pseudo={
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
        conditions=template.get("Conditions", {}),
    )
    for logical in template["Resources"]:
        fake_arn = f"arn:aws:fake:{region}:{account}:{stack_name}-{logical}"
        resolver.refs[logical] = fake_arn
        for attribute in ("Arn", "Name", "TopicName", "QueueName"):
            resolver.attributes[(logical, attribute)] = fake_arn
    return {
        Path(resource["Properties"]["CodeUri"]).name: {
            name: str(value)
            for name, value in resolver.resolve(function_environment(template, logical)).items()
        }
        for logical, resource in resources_of_type(template, "AWS::Serverless::Function").items()
    }
