"""The infrastructure as written: the state machine definitions, template.yaml and
samconfig.toml, checked offline against the code they have to agree with.

- Every statemachine/*.asl.json passes the Amazon States Language validator (the npm
  ``asl-validator`` CLI installed by ``make node-tools``) and a graph check: targets
  exist, every state is reachable and can reach an end, every Task retries the
  provider's transient errors by their class names and catches the rest.
- template.yaml keeps its security and reliability invariants: encrypted, versioned,
  TLS-only storage; least-privilege policies; secrets only by ARN; log retention;
  a filtered, bounded, dead-lettered upload trigger.
- Each function's environment and the settings its handler loads at import agree both
  ways: every variable the settings require is set, every variable set is read.

``sam validate --lint`` runs in ``make test`` (make sam-validate), before these tests.
A missing tool fails these tests; nothing here is skipped.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from sft_local.template import (
    Resolver,
    function_environment,
    load_template,
    parameter_values,
    resources_of_type,
)
from sft_pipeline import settings as settings_module
from sft_pipeline.adapters.slack import DISABLED_VALUES
from sft_pipeline.adapters.training_bucket import LINEAGE_TAG, UNREGISTERED
from sft_pipeline.generation.run import GENERATED_PREFIX, WORK_PREFIX, GenerationState
from sft_pipeline.jobs import (
    EvaluationOutcome,
    JobProgress,
    JobState,
    ModelRegistration,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.notifications import Outcome
from sft_pipeline.observability import NAMESPACE, Metric
from sft_pipeline.pipeline.evaluation_steps import Prepared
from sft_pipeline.providers.base import (
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
)
from sft_pipeline.settings import Settings, StorageLayout

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
ASL_FILES = sorted((ROOT / "statemachine").glob("*.asl.json"))
# The workflow that polls a provider's job; the generation workflow has no poll loop.
FINE_TUNE_ASL = ROOT / "statemachine" / "fine_tune.asl.json"
# What each state machine carries between its tasks, when it is not the fine-tuning workflow's.
STATE_MODELS: dict[str, type[BaseModel]] = {"generate.asl.json": GenerationState}
ASL_VALIDATOR = ROOT / ".tools" / "node_modules" / ".bin" / "asl-validator"

PROVIDER_RETRIED_ERRORS = (ProviderTransientError.__name__, ProviderRateLimitError.__name__)
# AWS's advice for every Lambda task: retry the Lambda service's own transient errors.
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SUBSTITUTION = re.compile(r"\$\{([^}]+)\}")
# Actions that support no resource-level permissions, so "Resource": "*" is their only form.
RESOURCE_STAR_ACTIONS = frozenset(
    {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    }
)
# The actions of the SAM policy templates the template uses (from SAM's policy_templates.json).
SAM_POLICY_TEMPLATE_ACTIONS = {
    "S3ReadPolicy": {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:GetLifecycleConfiguration",
    },
    "S3WritePolicy": {"s3:PutObject", "s3:PutObjectAcl", "s3:PutLifecycleConfiguration"},
    "S3CrudPolicy": {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:GetLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:DeleteObject",
    },
    "DynamoDBCrudPolicy": {
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:ConditionCheckItem",
    },
    "DynamoDBReadPolicy": {
        "dynamodb:GetItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
    },
    "DynamoDBWritePolicy": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"},
    "SQSSendMessagePolicy": {"sqs:SendMessage*"},
    "SSMParameterReadPolicy": {
        "ssm:DescribeParameters",
        "ssm:GetParameters",
        "ssm:GetParameter",
        "ssm:GetParametersByPath",
    },
    "StepFunctionsExecutionPolicy": {"states:StartExecution"},
    "SNSPublishMessagePolicy": {"sns:Publish"},
    "KMSDecryptPolicy": {"kms:Decrypt"},
    "KMSEncryptPolicy": {"kms:Encrypt"},
    "AWSSecretsManagerGetSecretValuePolicy": {"secretsmanager:GetSecretValue"},
    "LambdaInvokePolicy": {"lambda:InvokeFunction"},
}
SECRET_LIKE_NAME = re.compile(
    r"(^|_)(SECRET|TOKEN|PASSWORD|PASSPHRASE|API_?KEY|WEBHOOK(_URL)?|PRIVATE_KEY|CREDENTIALS?)(_|$)"
)
SECRET_LIKE_VALUE = re.compile(r"^(sk-|xox[abp]-)|hooks\.slack\.com|-----BEGIN")
BUCKET_NAME_MAX = 63
# "<stack>-data-<12-digit account>-<region>"; ap-southeast-5 is among the longest region names.
BUCKET_NAME_OVERHEAD = len("-data-123456789012-ap-southeast-5")


# ============================================================================ helpers


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def properties(logical: str) -> dict[str, Any]:
    props: dict[str, Any] = RESOURCES[logical].get("Properties", {})
    return props


def functions() -> dict[str, dict[str, Any]]:
    return resources_of_type(TEMPLATE, "AWS::Serverless::Function")


def state_machines() -> dict[str, dict[str, Any]]:
    return resources_of_type(TEMPLATE, "AWS::Serverless::StateMachine")


def refers_to(value: Any, logical: str) -> bool:
    """Whether a template value is Ref/GetAtt of ``logical`` (or a Sub naming it)."""
    if value == {"Ref": logical}:
        return True
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return bool(value["Fn::GetAtt"][0] == logical)
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return any(name.split(".")[0] == logical for name in SUBSTITUTION.findall(text))
    return False


def ref_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return None


def references(value: Any) -> set[str]:
    """Every resource or parameter a template value names through Ref, GetAtt or Sub."""
    if isinstance(value, list):
        return set().union(*(references(item) for item in value))
    if not isinstance(value, dict):
        return set()
    if "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return {name.split(".")[0] for name in SUBSTITUTION.findall(text)}
    named = {target} if (target := ref_target(value)) else set()
    return named.union(*(references(item) for item in value.values()))


NO_VALUE = "<AWS::NoValue>"


def resolver(**overrides: str) -> Resolver:
    """Evaluates the template's conditions and values for these parameter values."""
    return Resolver(
        parameters=parameter_values(TEMPLATE, overrides),
        pseudo={"AWS::NoValue": NO_VALUE},
        conditions=TEMPLATE.get("Conditions", {}),
    )


def environment(logical: str) -> dict[str, Any]:
    """A function's environment variables, Globals included."""
    return function_environment(TEMPLATE, logical)


# Read by Powertools itself; the service name and the namespace are set in observability.py.
POWERTOOLS_VARIABLES = frozenset({"POWERTOOLS_LOG_LEVEL"})


def settings_of(logical: str) -> type[Settings]:
    """The settings class a function's handler loads at import, i.e. at its cold start."""
    app = ROOT / properties(logical)["CodeUri"] / "app.py"
    loaded = [
        node.value.args[0].id
        for node in ast.parse(app.read_text()).body
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "load_settings"
        and isinstance(node.value.args[0], ast.Name)
    ]
    assert len(loaded) == 1, f"{app} must load its settings once at import"
    kind = getattr(settings_module, loaded[0])
    assert isinstance(kind, type) and issubclass(kind, Settings)
    return kind


def variables_read(kind: type[Settings]) -> dict[str, bool]:
    """Each environment variable the settings read, and whether it is required."""
    prefix = str(kind.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper(): f.is_required() for name, f in kind.model_fields.items()}


def policy_entries() -> Iterator[tuple[str, Any]]:
    """(owner, entry) for every SAM ``Policies`` entry of a function or state machine."""
    for logical, resource in {**functions(), **state_machines()}.items():
        for entry in as_list(resource["Properties"].get("Policies", [])):
            yield logical, entry


def identity_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of an identity policy: SAM inline statements and IAM resources."""
    for owner, entry in policy_entries():
        if isinstance(entry, dict) and "Statement" in entry:
            for statement in as_list(entry["Statement"]):
                yield owner, statement
    for logical, resource in RESOURCES.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for statement in as_list(policy["PolicyDocument"]["Statement"]):
                    yield logical, statement
        elif resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            for statement in as_list(props["PolicyDocument"]["Statement"]):
                yield logical, statement


def resource_policy_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Statements of resource policies: bucket, key, topic and queue policies."""
    for logical, resource in RESOURCES.items():
        props = resource.get("Properties", {})
        document = None
        if resource["Type"] == "AWS::KMS::Key":
            document = props.get("KeyPolicy")
        elif resource["Type"] in {
            "AWS::S3::BucketPolicy",
            "AWS::SNS::TopicPolicy",
            "AWS::SQS::QueuePolicy",
        }:
            document = props.get("PolicyDocument")
        if document:
            for statement in as_list(document["Statement"]):
                yield logical, statement


def granted_actions(logical: str, policy_templates: set[str] | None = None) -> set[str]:
    """The actions a function's Policies allow (only those templates, if given)."""
    granted: set[str] = set()
    for entry in as_list(properties(logical).get("Policies", [])):
        if isinstance(entry, dict) and "Statement" in entry:
            if policy_templates is None:
                for statement in as_list(entry["Statement"]):
                    if statement.get("Effect") == "Allow":
                        granted |= set(as_list(statement["Action"]))
            continue
        names = [entry] if isinstance(entry, str) else list(entry)
        for name in names:
            if name not in SAM_POLICY_TEMPLATE_ACTIONS:
                # Not an AssertionError, so the xfail tests below cannot swallow it.
                raise LookupError(f"{logical} uses {name}: add it to SAM_POLICY_TEMPLATE_ACTIONS")
            if policy_templates is None or name in policy_templates:
                granted |= SAM_POLICY_TEMPLATE_ACTIONS[name]
    return granted


def allows(granted: set[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in granted)


def kms_encrypted(logical: str) -> bool:
    props = properties(logical)
    if RESOURCES[logical]["Type"] == "AWS::S3::Bucket":
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        return any(
            rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"].startswith("aws:kms")
            for rule in rules
        )
    return "KmsMasterKeyId" in props


def bucket_named(value: Any) -> str | None:
    """The bucket a policy template's BucketName means (a Ref, or the same name expression)."""
    for logical in resources_of_type(TEMPLATE, "AWS::S3::Bucket"):
        if value == {"Ref": logical} or value == properties(logical).get("BucketName"):
            return logical
    return None


def encrypted_destinations(function: str) -> list[str]:
    """What the function (or Lambda, with its role) writes to that is encrypted with KMS."""
    props = properties(function)
    found = []
    for entry in as_list(props.get("Policies", [])):
        if not isinstance(entry, dict):
            continue
        for name in ("S3CrudPolicy", "S3WritePolicy"):
            bucket = bucket_named(entry.get(name, {}).get("BucketName"))
            if bucket and kms_encrypted(bucket):
                found.append(f"s3:PutObject to {bucket}")
        if "SNSPublishMessagePolicy" in entry:
            topic = ref_target(entry["SNSPublishMessagePolicy"]["TopicName"]) or ""
            if kms_encrypted(topic):
                found.append(f"sns:Publish to {topic}")
    queues = []
    if props.get("DeadLetterQueue", {}).get("Type") == "SQS":
        queues.append(props["DeadLetterQueue"]["TargetArn"])
    on_failure = props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
    if on_failure and on_failure["Type"] == "SQS":
        queues.append(on_failure["Destination"])
    for queue in queues:
        target = ref_target(queue) or ""
        if kms_encrypted(target):
            found.append(f"sqs:SendMessage to {target}")
    return list(dict.fromkeys(found))


# ============================================================================ ASL


def load_asl(path: Path) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(path.read_text())
    return definition


def scopes(definition: dict[str, Any], name: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The top-level machine and every nested one (Parallel branches, Map processors)."""
    yield name or "<root>", definition
    for state_name, state in definition["States"].items():
        for i, branch in enumerate(state.get("Branches", [])):
            yield from scopes(branch, f"{name}{state_name}.Branches[{i}]")
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from scopes(state[key], f"{name}{state_name}.{key}")


def transitions(state: dict[str, Any]) -> list[str]:
    targets = [state[key] for key in ("Next", "Default") if key in state]
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


def is_terminal(state: dict[str, Any]) -> bool:
    return state["Type"] in {"Succeed", "Fail"} or state.get("End") is True


def reachable(states: dict[str, Any], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo.extend(transitions(states[name]))
    return seen


def tasks(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for _, scope in scopes(definition):
        for name, state in scope["States"].items():
            if state["Type"] == "Task":
                yield name, state


def catching_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The states whose Catch reports a task's error: each top-level task itself, and for a
    task inside a Map or Parallel the enclosing state, which catches whatever its items raise."""
    nesting = ("ItemProcessor", "Iterator", "Branches")
    for name, state in definition["States"].items():
        if state["Type"] == "Task" or any(key in state for key in nesting):
            yield name, state


def calls_a_provider(state: dict[str, Any], path: Path) -> bool:
    """Whether the task's function is one that reaches a provider (it is given the key)."""
    match = SUBSTITUTION.search(json.dumps(state.get("Parameters", {})))
    if match is None:
        return False
    _, props = state_machine_for(path)
    function = ref_target(props["DefinitionSubstitutions"][match.group(1)])
    variables = functions()[function]["Properties"].get("Environment", {}).get("Variables", {})
    return "OPENAI_SECRET_ARN" in variables


def waits_for_an_event(state: dict[str, Any]) -> bool:
    """A task that holds a task token until an event (or its timeout) ends it."""
    return str(state.get("Resource", "")).endswith(".waitForTaskToken")


def all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for _, scope in scopes(definition):
        yield from scope["States"].items()


# What the tasks' results are stored as in the execution's state, by ResultPath.
TASK_RESULTS: dict[str, type[BaseModel]] = {
    "$.registered": ModelRegistration,
    "$.evaluation_plan": Prepared,
    "$.evaluation": EvaluationOutcome,
}


def model_has_path(path: str) -> bool:
    """Whether a JSONPath like ``$.job.next_wait_seconds`` names a field of the task input."""
    parts = path.removeprefix("$.").split(".")
    models: dict[str, Any] = {
        "job": JobProgress,
        "request": WorkflowRequest,
        **{key.removeprefix("$."): model for key, model in TASK_RESULTS.items()},
    }
    if parts[0] not in WorkflowState.model_fields and parts[0] not in models:
        return False
    if len(parts) == 1:
        return True
    model = models.get(parts[0])
    return model is not None and len(parts) == 2 and parts[1] in model.model_fields


def state_machine_for(path: Path) -> tuple[str, dict[str, Any]]:
    relative = path.relative_to(ROOT).as_posix()
    matches = [
        (logical, resource["Properties"])
        for logical, resource in state_machines().items()
        if resource["Properties"].get("DefinitionUri") == relative
    ]
    assert len(matches) == 1, f"{relative} is the DefinitionUri of {len(matches)} state machines"
    return matches[0]


def test_there_is_a_state_machine_definition() -> None:
    assert ASL_FILES, "no statemachine/*.asl.json"
    for path in ASL_FILES:
        state_machine_for(path)


@pytest.fixture(scope="module")
def asl_validator() -> Path:
    if not ASL_VALIDATOR.exists():
        pytest.fail(f"{ASL_VALIDATOR.relative_to(ROOT)} is missing: run `make node-tools`")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH; asl-validator needs Node.js")
    return ASL_VALIDATOR


def run_asl_validator(validator: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(validator), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_asl_passes_the_asl_validator(asl_validator: Path, path: Path) -> None:
    result = run_asl_validator(asl_validator, path)
    assert result.returncode == 0, f"asl-validator rejected {path.name}:\n{result.stdout}"
    assert "is valid" in result.stdout


def test_asl_validator_rejects_a_broken_definition(asl_validator: Path, tmp_path: Path) -> None:
    """The CLI really validates: a dangling Next and a Wait with two durations fail."""
    broken = load_asl(ASL_FILES[0])
    first = broken["StartAt"]
    broken["States"][first]["Next"] = "NoSuchState"
    broken["States"]["BadWait"] = {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.x", "End": True}
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    result = run_asl_validator(asl_validator, path)
    assert result.returncode != 0
    assert "NoSuchState" in result.stdout + result.stderr


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
class TestStateMachineGraph:
    def test_every_target_exists(self, path: Path) -> None:
        for scope_name, scope in scopes(load_asl(path)):
            states = scope["States"]
            assert scope["StartAt"] in states, f"{scope_name}: StartAt {scope['StartAt']}"
            for name, state in states.items():
                missing = [t for t in transitions(state) if t not in states]
                assert not missing, f"{scope_name}: {name} goes to missing state(s) {missing}"

    def test_every_state_is_reachable(self, path: Path) -> None:
        for scope_name, scope in scopes(load_asl(path)):
            unreachable = set(scope["States"]) - reachable(scope["States"], scope["StartAt"])
            assert not unreachable, f"{scope_name}: unreachable states {sorted(unreachable)}"

    def test_every_state_can_reach_an_end(self, path: Path) -> None:
        for scope_name, scope in scopes(load_asl(path)):
            states = scope["States"]
            for name, state in states.items():
                if state["Type"] in {"Succeed", "Fail"}:
                    assert "Next" not in state and "End" not in state, name
                elif state["Type"] != "Choice":
                    assert ("Next" in state) != (state.get("End") is True), (
                        f"{scope_name}: {name} needs exactly one of Next and End: true"
                    )
                ends = {s for s in reachable(states, name) if is_terminal(states[s])}
                assert ends, f"{scope_name}: no terminal state can be reached from {name}"

    def test_every_task_retries_and_catches(self, path: Path) -> None:
        definition = load_asl(path)
        for name, state in tasks(definition):
            assert state.get("Retry"), f"{name} has no Retry"
            if waits_for_an_event(state):
                # Its timeout is the poll interval, read from the job.
                assert model_has_path(state["TimeoutSecondsPath"]), name
            else:
                assert "TimeoutSeconds" in state, f"{name} has no TimeoutSeconds"
        for name, state in catching_states(definition):
            assert state.get("Catch"), f"{name} has no Catch"
            assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], (
                f"{name}: the last Catch must catch States.ALL, so no error escapes unreported"
            )

    def test_task_results_are_stored_as_the_models_the_steps_read(self, path: Path) -> None:
        """A task's ResultSelector names exactly the fields of the model stored at its
        ResultPath, so the next step parses what the last one returned."""
        for name, state in tasks(load_asl(path)):
            model = TASK_RESULTS.get(state.get("ResultPath", ""))
            if model is None:
                continue
            selected = {key.removesuffix(".$") for key in state["ResultSelector"]}
            assert selected == set(model.model_fields), f"{name} selects {sorted(selected)}"
            for key, source in state["ResultSelector"].items():
                assert source == f"$.Payload.{key.removesuffix('.$')}", f"{name}: {key}"

    def test_tasks_retry_the_provider_errors_by_class_name(self, path: Path) -> None:
        for name, state in tasks(load_asl(path)):
            retried = [e for retrier in state["Retry"] for e in retrier["ErrorEquals"]]
            for error in PROVIDER_RETRIED_ERRORS if calls_a_provider(state, path) else ():
                assert error in retried, f"{name} does not retry {error}"
            if state["Resource"] == LAMBDA_INVOKE:
                for error in LAMBDA_SERVICE_ERRORS:
                    assert error in retried, f"{name} does not retry {error}"
            # Retrying cannot fix these; they go straight to the Catch.
            for never in (ProviderPermanentError.__name__, "States.ALL", "States.TaskFailed"):
                assert never not in retried, f"{name} retries {never}"

    def test_provider_retries_back_off_with_jitter(self, path: Path) -> None:
        for name, state in tasks(load_asl(path)):
            for retrier in state["Retry"]:
                assert 1 <= retrier.get("MaxAttempts", 3) <= 10, name
                if set(retrier["ErrorEquals"]) & set(PROVIDER_RETRIED_ERRORS):
                    assert retrier.get("BackoffRate", 2.0) > 1, f"{name}: no backoff"
                    assert retrier.get("JitterStrategy") == "FULL", f"{name}: no jitter"

    def test_a_catch_never_leads_back_into_its_task(self, path: Path) -> None:
        """Error handling ends the run: FinishJob's Catch has its own Fail state. The one
        exception is the wait for a job's end event: its timeout, or a failure to park its
        token, leads to the ordinary poll, which the poll loop bounds."""
        for _, scope in scopes(load_asl(path)):
            states = scope["States"]
            for name, state in states.items():
                if waits_for_an_event(state):
                    continue
                for catcher in state.get("Catch", []):
                    assert name not in reachable(states, catcher["Next"]), (
                        f"{name}'s Catch ({catcher['Next']}) leads back into {name}"
                    )

    def test_wait_takes_its_duration_from_the_job(self, path: Path) -> None:
        waits = [(n, s) for n, s in all_states(load_asl(path)) if s["Type"] == "Wait"]
        assert waits or path != FINE_TUNE_ASL, "the poll loop needs a Wait state"
        for name, state in waits:
            assert "SecondsPath" in state, f"{name} must use SecondsPath"
            assert not {"Seconds", "Timestamp", "TimestampPath"} & set(state), name
            assert model_has_path(state["SecondsPath"]), (
                f"{name}: {state['SecondsPath']} is not a field of the task input"
            )

    def test_choices_branch_on_fields_and_values_the_code_produces(self, path: Path) -> None:
        job_states = {s.value for s in JobState}
        carried = STATE_MODELS.get(path.name)
        for name, state in all_states(load_asl(path)):
            for choice in state.get("Choices", []):
                variable = choice["Variable"]
                if carried is not None:
                    field = carried.model_fields.get(variable.removeprefix("$."))
                    assert field is not None, f"{name}: {variable} is not a task input field"
                    allowed = get_args(field.annotation)
                    assert not allowed or choice["StringEquals"] in allowed, f"{name}: {choice}"
                    continue
                assert model_has_path(variable), f"{name}: {variable} is not a task input field"
                if variable == "$.job.state":
                    assert choice["StringEquals"] in job_states, f"{name}: {choice}"
                if variable == "$.outcome":
                    assert choice["StringEquals"] in {o.value for o in Outcome}, f"{name}"
            if state["Type"] == "Pass" and state.get("ResultPath") == "$.outcome":
                assert state["Result"] in {o.value for o in Outcome}, f"{name}: {state['Result']}"

    def test_the_execution_outlasts_the_longest_allowed_job(self, path: Path) -> None:
        """The poll loop's own timeout (which cancels the job) must fire first."""
        definition = load_asl(FINE_TUNE_ASL)
        parameters = TEMPLATE["Parameters"]
        longest = parameters["MaxJobDurationHours"]["MaxValue"] * 3600
        last_wait = parameters["MaxPollIntervalSeconds"]["MaxValue"]
        assert definition["TimeoutSeconds"] > longest + last_wait

    def test_substitutions_match_the_template(self, path: Path) -> None:
        used = set(SUBSTITUTION.findall(path.read_text()))
        logical, props = state_machine_for(path)
        declared = set(props.get("DefinitionSubstitutions", {}))
        assert used - declared == set(), f"{path.name} uses undeclared {sorted(used - declared)}"
        assert declared - used == set(), f"{logical} declares unused {sorted(declared - used)}"

    def test_substituted_functions_are_invocable_and_nothing_else(self, path: Path) -> None:
        logical, props = state_machine_for(path)
        substituted = set()
        for name, value in props.get("DefinitionSubstitutions", {}).items():
            if name.endswith("FunctionArn"):
                target = ref_target(value)
                assert target in functions(), f"{name} is not a function of the template"
                substituted.add(target)
        invocable = {
            ref_target(entry["LambdaInvokePolicy"]["FunctionName"])
            for entry in as_list(props.get("Policies", []))
            if isinstance(entry, dict) and "LambdaInvokePolicy" in entry
        }
        assert invocable == substituted, f"{logical} may invoke {invocable}, uses {substituted}"


# ============================================================================ template


def test_kms_keys_rotate() -> None:
    keys = resources_of_type(TEMPLATE, "AWS::KMS::Key")
    assert keys
    for logical in keys:
        assert properties(logical).get("EnableKeyRotation") is True, logical


@pytest.mark.parametrize("bucket", sorted(resources_of_type(TEMPLATE, "AWS::S3::Bucket")))
class TestBucket:
    def test_versioned(self, bucket: str) -> None:
        assert properties(bucket)["VersioningConfiguration"]["Status"] == "Enabled"

    def test_kms_encrypted(self, bucket: str) -> None:
        rules = properties(bucket)["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        for rule in rules:
            default = rule["ServerSideEncryptionByDefault"]
            assert default["SSEAlgorithm"] in {"aws:kms", "aws:kms:dsse"}
            assert ref_target(default.get("KMSMasterKeyID")) in RESOURCES

    def test_public_access_fully_blocked(self, bucket: str) -> None:
        block = properties(bucket)["PublicAccessBlockConfiguration"]
        flags = (
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        )
        assert all(block.get(flag) is True for flag in flags), block

    def test_retained_on_stack_deletion(self, bucket: str) -> None:
        assert RESOURCES[bucket].get("DeletionPolicy") == "Retain"

    def test_tls_only_bucket_policy(self, bucket: str) -> None:
        policies = [
            properties(logical)
            for logical in resources_of_type(TEMPLATE, "AWS::S3::BucketPolicy")
            if refers_to(properties(logical)["Bucket"], bucket)
        ]
        assert policies, f"{bucket} has no bucket policy"
        denials = [
            statement
            for policy in policies
            for statement in as_list(policy["PolicyDocument"]["Statement"])
            if statement["Effect"] == "Deny"
            and statement.get("Principal") in ("*", {"AWS": "*"})
            and "s3:*" in as_list(statement["Action"])
            and str(statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport"))
            .lower()
            .strip()
            == "false"
        ]
        assert denials, f"{bucket} has no Deny of s3:* without aws:SecureTransport"
        resources = [r for statement in denials for r in as_list(statement["Resource"])]
        assert any(refers_to(r, bucket) and "/*" not in json.dumps(r) for r in resources)
        assert any(refers_to(r, bucket) and "/*" in json.dumps(r) for r in resources)


@pytest.mark.parametrize("table", sorted(resources_of_type(TEMPLATE, "AWS::DynamoDB::Table")))
def test_tables_have_pitr_and_kms(table: str) -> None:
    props = properties(table)
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    sse = props["SSESpecification"]
    assert sse["SSEEnabled"] is True
    assert sse.get("SSEType") == "KMS"
    assert ref_target(sse.get("KMSMasterKeyId")) in RESOURCES, "a customer-managed key"


@pytest.mark.parametrize(
    ("resource_type", "key_property"),
    [
        ("AWS::SNS::Topic", "KmsMasterKeyId"),
        ("AWS::SQS::Queue", "KmsMasterKeyId"),
        ("AWS::SecretsManager::Secret", "KmsKeyId"),
    ],
)
def test_messages_and_secrets_use_the_stack_key(resource_type: str, key_property: str) -> None:
    found = resources_of_type(TEMPLATE, resource_type)
    assert found, f"no {resource_type}"
    for logical in found:
        assert ref_target(properties(logical).get(key_property)) in RESOURCES, logical


@pytest.mark.parametrize("function", sorted(functions()))
class TestFunction:
    def test_code_folder_exposes_the_handler(self, function: str) -> None:
        props = properties(function)
        folder = ROOT / props["CodeUri"]
        assert folder.is_dir(), f"{function}: CodeUri {props['CodeUri']} does not exist"
        module, _, handler = props["Handler"].rpartition(".")
        source = folder / f"{module.replace('.', '/')}.py"
        assert source.is_file(), f"{function}: {source.relative_to(ROOT)} does not exist"
        tree = ast.parse(source.read_text())
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert handler in defined, f"{function}: {source.name} defines no {handler}()"
        assert (folder / "requirements.txt").is_file(), f"{function}: no requirements.txt"

    def test_has_a_log_group_with_retention(self, function: str) -> None:
        groups = [
            properties(logical)
            for logical in resources_of_type(TEMPLATE, "AWS::Logs::LogGroup")
            if properties(logical).get("LogGroupName")
            == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
        ]
        assert len(groups) == 1, f"{function} needs one LogGroup /aws/lambda/${{{function}}}"
        assert "RetentionInDays" in groups[0]

    def test_async_events_have_an_on_failure_destination(self, function: str) -> None:
        events = properties(function).get("Events", {})
        if not any(event["Type"] in {"S3", "SNS", "EventBridgeRule"} for event in events.values()):
            return
        config = properties(function).get("EventInvokeConfig", {})
        assert config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        assert "MaximumRetryAttempts" in config

    def test_no_secret_in_the_environment(self, function: str) -> None:
        for name, value in environment(function).items():
            if isinstance(value, str):
                assert not SECRET_LIKE_VALUE.search(value), f"{function}: {name} holds a secret"
            if SECRET_LIKE_NAME.search(name):
                assert name.endswith("_SECRET_ARN"), f"{function}: {name} looks like a secret"
                target = ref_target(value)
                assert target is not None, f"{function}: {name} must be the ARN of a secret"
                assert RESOURCES[target]["Type"] == "AWS::SecretsManager::Secret", name

    def test_reads_exactly_the_secrets_its_environment_names(self, function: str) -> None:
        named = {
            ref_target(value)
            for name, value in environment(function).items()
            if name.endswith("_SECRET_ARN")
        }
        readable = {
            ref_target(entry[template]["SecretArn"])
            for entry in as_list(properties(function).get("Policies", []))
            if isinstance(entry, dict)
            for template in entry
            if template == "AWSSecretsManagerGetSecretValuePolicy"
        }
        assert readable == named, f"{function} may read {readable}, its environment names {named}"

    def test_every_environment_variable_is_read_by_its_settings(self, function: str) -> None:
        """A misspelt or forgotten name would silently fall back to a default."""
        read = variables_read(settings_of(function)).keys() | POWERTOOLS_VARIABLES
        unread = sorted(environment(function).keys() - read)
        assert not unread, f"{function}: {settings_of(function).__name__} never reads {unread}"

    def test_every_variable_its_settings_require_is_set(self, function: str) -> None:
        """The cold start would fail naming it: better here than in a deployment."""
        required = {
            name for name, needed in variables_read(settings_of(function)).items() if needed
        }
        missing = sorted(required - environment(function).keys())
        assert not missing, f"{function}: template.yaml does not set {missing}"


def s3_triggers() -> dict[str, dict[str, Any]]:
    """Each S3 event of any function by its prefix, with the function it triggers."""
    found = {
        _prefix(event["Properties"]): {"function": logical, **event["Properties"]}
        for logical, resource in functions().items()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "S3"
    }
    assert {trigger["function"] for trigger in found.values()} == {
        found["training/"]["function"],
        found[GENERATION_PREFIX]["function"],
    }, "only the validation and generation functions are triggered by the bucket"
    return found


GENERATION_PREFIX = "generation/"


def _prefix(event: dict[str, Any]) -> str:
    return next(r["Value"] for r in event["Filter"]["S3Key"]["Rules"] if r["Name"] == "prefix")


def validation_function() -> tuple[str, dict[str, Any]]:
    trigger = dict(s3_triggers()["training/"])
    return trigger.pop("function"), trigger


def test_retrain_orders_trigger_the_validation_step_and_nothing_else() -> None:
    """The API and sft retrain write orders where the validation step's second trigger
    watches, and nothing the pipeline writes lands there."""
    trigger = s3_triggers()[StorageLayout.model_fields["retrain_prefix"].default]
    assert trigger["function"] == validation_function()[0]
    rules = {rule["Name"]: rule["Value"] for rule in trigger["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "retrain/", "suffix": ".json"}
    defaults = StorageLayout.model_fields
    for written in ("reports_prefix", "prepared_prefix", "bedrock_output_prefix"):
        assert not str(defaults[written].default).startswith(rules["prefix"]), written


def test_upload_trigger_is_filtered_to_training_jsonl() -> None:
    _, event = validation_function()
    assert resources_of_type(TEMPLATE, "AWS::S3::Bucket").get(ref_target(event["Bucket"]) or "")
    assert "s3:ObjectCreated:*" in as_list(event["Events"])
    rules = {rule["Name"]: rule["Value"] for rule in event["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "training/", "suffix": ".jsonl"}
    # The code agrees, and what the pipeline writes never triggers it again.
    defaults = StorageLayout.model_fields
    assert defaults["training_prefix"].default == rules["prefix"]
    for written in ("reports_prefix", "prepared_prefix"):
        assert not str(defaults[written].default).startswith(rules["prefix"]), written


def test_generation_specs_start_a_generation_run_and_its_writes_trigger_nothing_of_theirs() -> None:
    """Specs under generation/ start the generation function, never the validation step; the
    run's work, held-out files and reports land where no trigger watches; its result goes
    under training/, which starts the validation step as any upload does."""
    trigger = s3_triggers()[GENERATION_PREFIX]
    assert trigger["function"] != validation_function()[0]
    assert settings_of(trigger["function"]).__name__ == "StartGenerationSettings"
    assert "s3:ObjectCreated:*" in as_list(trigger["Events"])
    reports = StorageLayout.model_fields["reports_prefix"].default
    for written in (WORK_PREFIX, GENERATED_PREFIX, reports):
        assert not any(str(written).startswith(prefix) for prefix in s3_triggers()), written
    config = properties(trigger["function"])["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] <= 2
    assert config["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def test_upload_trigger_is_bounded_and_dead_lettered() -> None:
    logical, _ = validation_function()
    props = properties(logical)
    config = props["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] <= 2
    destination = config["DestinationConfig"]["OnFailure"]
    assert destination["Type"] == "SQS"
    assert RESOURCES[ref_target(destination["Destination"]) or ""]["Type"] == "AWS::SQS::Queue"


def test_state_machines_are_standard_traced_and_logged_without_data() -> None:
    for logical, resource in state_machines().items():
        props = resource["Properties"]
        assert props.get("Type", "STANDARD") == "STANDARD", logical
        assert props["Tracing"]["Enabled"] is True, logical
        logging = props["Logging"]
        assert logging["Level"] in {"ERROR", "ALL"}
        assert logging["IncludeExecutionData"] is False
        for destination in logging["Destinations"]:
            group = ref_target(destination["CloudWatchLogsLogGroup"]["LogGroupArn"]) or ""
            assert "RetentionInDays" in properties(group), f"{group} keeps logs forever"


def test_no_identity_policy_allows_wildcard_actions() -> None:
    statements = list(identity_statements())
    assert statements, "the template has inline policy statements to check"
    for owner, statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        assert "NotAction" not in statement and "NotResource" not in statement, owner
        actions = as_list(statement["Action"])
        wide = [a for a in actions if a == "*" or str(a).endswith(":*")]
        assert not wide, f"{owner} allows {wide}"
        if "*" in as_list(statement["Resource"]):
            loose = sorted(set(actions) - RESOURCE_STAR_ACTIONS)
            assert not loose, f"{owner} allows {loose} on every resource"


def test_policy_templates_are_scoped_to_named_resources() -> None:
    for owner, entry in policy_entries():
        assert not isinstance(entry, str) or not re.search(
            r"FullAccess|AdministratorAccess|PowerUserAccess", entry
        ), f"{owner} attaches {entry}"
        if isinstance(entry, dict) and "Statement" not in entry:
            for template, arguments in entry.items():
                assert arguments, f"{owner}: {template} without a resource"
                assert "*" not in json.dumps(arguments), f"{owner}: {template} on '*'"


def test_resource_policies_grant_nothing_to_everyone() -> None:
    for owner, statement in resource_policy_statements():
        if statement.get("Effect") != "Allow":
            continue  # e.g. the bucket policy's Deny of s3:* over plain HTTP
        principal = statement.get("Principal")
        assert principal not in ("*", {"AWS": "*"}), f"{owner} allows anyone"
        wide = [a for a in as_list(statement["Action"]) if a == "*" or str(a).endswith(":*")]
        if wide:
            # Only the key's own administration by the account, as every key policy needs.
            assert isinstance(principal, dict), owner
            assert set(principal) == {"AWS"}, f"{owner} gives {wide} to {principal}"
            assert ":root" in json.dumps(principal["AWS"]), f"{owner} gives {wide} widely"
        elif isinstance(principal, dict) and "Service" in principal:
            condition = json.dumps(statement.get("Condition", {}))
            # CloudWatch Logs names the log group in the encryption context instead.
            assert (
                "aws:SourceAccount" in condition
                or "aws:SourceArn" in condition
                or ("kms:EncryptionContext:aws:logs:arn" in condition and "AccountId" in condition)
            ), f"{owner}: a service principal without a source condition"


def test_task_timeouts_cover_their_function_timeouts() -> None:
    """A task that gave up on a still-running function would retry it: two provider jobs."""
    default_timeout = TEMPLATE.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    for path in ASL_FILES:
        logical, props = state_machine_for(path)
        substitutions = props.get("DefinitionSubstitutions", {})
        for name, state in tasks(load_asl(path)):
            if waits_for_an_event(state):
                continue  # it only parks a token; a late one is refused, nothing is repeated
            used = SUBSTITUTION.findall(json.dumps(state.get("Parameters", {})))
            for function in {ref_target(substitutions[u]) for u in used if u in substitutions}:
                if function not in functions():
                    continue
                timeout = properties(function).get("Timeout", default_timeout)
                assert state["TimeoutSeconds"] >= timeout, (
                    f"{logical}.{name} times out after {state['TimeoutSeconds']} s, "
                    f"{function} may run {timeout} s"
                )


def test_writers_to_encrypted_resources_can_generate_data_keys() -> None:
    problems = [
        f"{function}: {', '.join(writes)}"
        for function in sorted(functions())
        if (writes := encrypted_destinations(function))
        and not allows(granted_actions(function), "kms:GenerateDataKey")
    ]
    assert not problems, "no kms:GenerateDataKey for:\n" + "\n".join(problems)


def test_no_function_can_delete_or_expire_training_data() -> None:
    s3_templates = {name for name in SAM_POLICY_TEMPLATE_ACTIONS if name.startswith("S3")}
    problems = [
        f"{function}: {action}"
        for function in sorted(functions())
        for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration")
        if allows(granted_actions(function, s3_templates), action)
    ]
    assert not problems, problems


def test_every_dead_letter_queue_has_an_alarm() -> None:
    queues = set()
    for function in functions():
        props = properties(function)
        if "DeadLetterQueue" in props:
            queues.add(ref_target(props["DeadLetterQueue"]["TargetArn"]))
        on_failure = (
            props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        )
        if on_failure:
            queues.add(ref_target(on_failure["Destination"]))
    alarmed = {
        ref_target(dimension["Value"])
        for logical in resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")
        for dimension in properties(logical).get("Dimensions", [])
        if properties(logical).get("Namespace") == "AWS/SQS" and dimension["Name"] == "QueueName"
    }
    assert queues, "no dead-letter queues found"
    assert queues <= alarmed, f"no alarm on {sorted(q or '' for q in queues - alarmed)}"


STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:fine-tune"
SEARCHED_METRIC = re.compile(r"SEARCH\('\{(?P<namespace>\w+)[^}]*\} MetricName=\"(?P<name>\w+)\"")


def dashboard_metrics() -> set[tuple[str, str, str | None]]:
    """(namespace, metric name, dimension value or None) each dashboard graph shows, from
    its body as deployed: the Sub rendered, then read as the JSON CloudWatch reads."""
    [dashboard] = resources_of_type(TEMPLATE, "AWS::CloudWatch::Dashboard").values()
    rendering = Resolver(
        parameters={},
        pseudo={"AWS::Region": "us-east-1", "AWS::StackName": "sft"},
        refs={"FineTuneStateMachine": STATE_MACHINE_ARN},
    )
    body = json.loads(rendering.resolve(dashboard["Properties"]["DashboardBody"]))
    shown: set[tuple[str, str, str | None]] = set()
    for widget in body["widgets"]:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                found = SEARCHED_METRIC.search(line[0]["expression"])
                assert found, line[0]["expression"]
                shown.add((found["namespace"], found["name"], None))
            else:
                namespace, name, _, value = line
                shown.add((namespace, name, value))
    return shown


def test_the_dashboard_shows_every_metric_the_code_emits() -> None:
    # Read from the code, so a metric added there without a graph fails here.
    assert {(NAMESPACE, metric.value, None) for metric in Metric} <= dashboard_metrics()


def test_the_dashboard_shows_workflow_executions_by_outcome() -> None:
    assert {
        ("AWS/States", f"Executions{outcome}", STATE_MACHINE_ARN)
        for outcome in ("Succeeded", "Failed", "TimedOut")
    } <= dashboard_metrics()


def test_secret_placeholders_are_not_secrets() -> None:
    secrets = resources_of_type(TEMPLATE, "AWS::SecretsManager::Secret")
    for logical in secrets:
        value = str(properties(logical).get("SecretString", ""))
        assert not SECRET_LIKE_VALUE.search(value), f"{logical} ships a real-looking secret"
    # A fresh stack has Slack switched off until a webhook URL is put in.
    assert str(properties("SlackWebhookSecret")["SecretString"]).lower() in DISABLED_VALUES


def test_keys_outlive_the_stack_like_the_data_they_encrypt() -> None:
    """Deleting the stack must not schedule the deletion of the key of a retained resource:
    the bucket, table and queues it keeps would become unreadable."""
    keys = set(resources_of_type(TEMPLATE, "AWS::KMS::Key"))
    retained = [
        logical
        for logical, resource in RESOURCES.items()
        if resource.get("DeletionPolicy") == "Retain" and logical not in keys
    ]
    used = {key for logical in retained for key in references(properties(logical)) & keys}
    assert used, "the retained resources are encrypted with the stack's key"
    for key in used:
        assert RESOURCES[key].get("DeletionPolicy") == "Retain", key
        assert RESOURCES[key].get("UpdateReplacePolicy") == "Retain", key


def test_log_groups_are_encrypted_with_the_stack_key() -> None:
    groups = resources_of_type(TEMPLATE, "AWS::Logs::LogGroup")
    assert groups
    keys = {ref_target(properties(logical).get("KmsKeyId")) for logical in groups}
    assert keys <= set(resources_of_type(TEMPLATE, "AWS::KMS::Key")), keys
    # CloudWatch Logs itself encrypts, so the key policy must let it, for this account only.
    for key in keys:
        grants = [
            statement
            for statement in as_list(properties(key or "")["KeyPolicy"]["Statement"])
            if "logs." in json.dumps(statement.get("Principal", {}))
        ]
        assert len(grants) == 1, f"{key}'s policy does not let CloudWatch Logs use it"
        assert {"kms:Encrypt*", "kms:GenerateDataKey*", "kms:Decrypt*"} <= set(
            as_list(grants[0]["Action"])
        )
        context = grants[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        assert "${AWS::AccountId}:log-group:" in json.dumps(context)


def test_no_reserved_concurrency_unless_asked() -> None:
    """A new account may have a concurrency quota of 10, of which Lambda keeps 10
    unreserved: any fixed reservation fails the first deploy there."""
    reserving = {
        logical: properties(logical)["ReservedConcurrentExecutions"]
        for logical in functions()
        if "ReservedConcurrentExecutions" in properties(logical)
    }
    assert validation_function()[0] in reserving, "the upload trigger can still be capped"
    for logical, value in reserving.items():
        assert isinstance(value, dict), f"{logical} reserves a fixed {value}"
        parameter = next(iter(references(value) - {"AWS::NoValue"}))
        assert resolver().resolve(value) == NO_VALUE, f"{logical} reserves by default"
        assert resolver(**{parameter: "0"}).resolve(value) == NO_VALUE, logical
        assert resolver(**{parameter: "25"}).resolve(value) == "25", logical


def test_the_api_gateway_logging_role_is_set_behind_a_parameter() -> None:
    """Access logging needs the region's API Gateway CloudWatch role: a fresh account has
    none, so the stack sets it by default; false leaves an existing setting alone."""
    [(account, resource)] = resources_of_type(TEMPLATE, "AWS::ApiGateway::Account").items()
    condition = resource["Condition"]
    role = ref_target(resource["Properties"]["CloudWatchRoleArn"]) or ""
    assert RESOURCES[role].get("Condition") == condition
    [parameter] = references(TEMPLATE["Conditions"][condition])
    assert resolver().condition(condition) is True
    assert resolver(**{parameter: "false"}).condition(condition) is False
    # The region's setting keeps naming the role after the stack is deleted.
    assert RESOURCES[role].get("DeletionPolicy") == "Retain"
    assert any(
        "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(arn)
        for arn in properties(role)["ManagedPolicyArns"]
    )
    logging_apis = [
        logical
        for logical in resources_of_type(TEMPLATE, "AWS::Serverless::Api")
        if "AccessLogSetting" in properties(logical)
    ]
    assert logging_apis
    for api in logging_apis:
        waits_for = [
            handle
            for handle in as_list(RESOURCES[api].get("DependsOn", []))
            if account in references(RESOURCES[handle].get("Metadata", {}))
        ]
        assert waits_for, f"{api}'s stage may be created before the account's logging role"


def test_depends_on_never_names_a_resource_that_may_not_exist() -> None:
    """CloudFormation refuses a DependsOn on a resource whose condition is false."""
    for logical, resource in RESOURCES.items():
        for target in as_list(resource.get("DependsOn", [])):
            condition = RESOURCES[target].get("Condition")
            assert condition is None or condition == resource.get("Condition"), (
                f"{logical} depends on {target}, which exists only if {condition}"
            )


def test_old_versions_expire_except_those_a_registered_model_was_trained_on() -> None:
    rules = properties("TrainingBucket")["LifecycleConfiguration"]["Rules"]
    expiring = [
        rule
        for rule in rules
        if rule["Status"] == "Enabled" and "NoncurrentVersionExpiration" in rule
    ]
    settings = StorageLayout.model_fields
    training = str(settings["training_prefix"].default)
    for rule in expiring:
        prefix = rule.get("Prefix", "")
        if training.startswith(prefix) or prefix.startswith(training):
            assert rule.get("TagFilters") == [{"Key": LINEAGE_TAG, "Value": UNREGISTERED}], (
                f"{rule['Id']} expires upload versions that registered models were trained on"
            )
            # A version is retagged when its job ends: no job outlives the rule's delay.
            longest_job_days = TEMPLATE["Parameters"]["MaxJobDurationHours"]["MaxValue"] / 24
            assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] > longest_job_days
    # Everything the pipeline writes is still cleaned up once replaced.
    covered = {rule.get("Prefix") for rule in expiring}
    for name in ("training_prefix", "reports_prefix", "prepared_prefix", "bedrock_output_prefix"):
        assert settings[name].default in covered, f"old versions under {name} never expire"


def test_upload_versions_are_tagged_by_validation_and_registration_only() -> None:
    tagging = {"s3:PutObjectTagging", "s3:PutObjectVersionTagging"}
    taggers = set()
    for owner, statement in identity_statements():
        if statement.get("Effect") != "Allow" or not tagging & set(as_list(statement["Action"])):
            continue
        taggers.add(owner)
        for resource in as_list(statement["Resource"]):
            assert json.dumps(resource).endswith('/training/*"}'), f"{owner} tags {resource}"
    # FinishJob registers the model itself when the registration step could not.
    assert taggers == {validation_function()[0], "RegisterModelFunction", "FinishJobFunction"}


def test_every_checkov_skip_says_why() -> None:
    """make checkov fails on any finding; a skip is a decision, with its reason beside it."""
    for logical, resource in RESOURCES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), f"{logical}: {skip}"
            assert len(str(skip.get("comment", "")).split()) >= 5, f"{logical}: {skip['id']}"


# ============================================================================ samconfig.toml


SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())


def override_pairs(value: Any) -> dict[str, str]:
    pairs = {}
    for item in as_list(value):
        name, sep, raw = str(item).partition("=")
        assert sep, f"parameter override {item!r} is not Name=Value"
        pairs[name] = raw.strip('"')
    return pairs


@pytest.mark.parametrize("profile", ["default", "dev", "prod"])
class TestSamConfig:
    def test_stack_name_makes_a_valid_bucket_name(self, profile: str) -> None:
        name = SAMCONFIG[profile]["global"]["parameters"]["stack_name"]
        assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", name), f"{profile}: {name}"
        assert len(name) + BUCKET_NAME_OVERHEAD <= BUCKET_NAME_MAX, f"{profile}: {name} too long"
        assert SAMCONFIG[profile]["global"]["parameters"]["region"]

    def test_deploy_settings(self, profile: str) -> None:
        deploy = SAMCONFIG[profile]["deploy"]["parameters"]
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert deploy["resolve_s3"] is True
        assert deploy["confirm_changeset"] is (profile == "prod")
        assert SAMCONFIG[profile]["build"]["parameters"]["cached"] is True
        assert SAMCONFIG[profile]["validate"]["parameters"]["lint"] is True

    def test_parameter_overrides_are_template_parameters_with_allowed_values(
        self, profile: str
    ) -> None:
        overrides = override_pairs(
            SAMCONFIG[profile]["deploy"]["parameters"]["parameter_overrides"]
        )
        declared = TEMPLATE["Parameters"]
        assert {"NotificationEmail", "CostCapUsd"} <= set(overrides)
        for name, value in overrides.items():
            assert name in declared, f"{profile}: template.yaml has no parameter {name}"
            spec = declared[name]
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], f"{profile}: {name}"
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], value), f"{profile}: {name}={value}"
            if spec["Type"] == "Number":
                number = float(value)
                assert number >= spec.get("MinValue", number), f"{profile}: {name}={value}"
                assert number <= spec.get("MaxValue", number), f"{profile}: {name}={value}"
