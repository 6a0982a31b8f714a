"""The fast path's infrastructure as written: the wait task in the state machine, the public
webhook route, the Bedrock rule, and what each of their functions may do."""

from __future__ import annotations

from typing import Any

from sft_pipeline.adapters.dynamodb.job_events import TTL_ATTRIBUTE
from sft_pipeline.job_events import WaitToken
from sft_pipeline.jobs import JobProgress
from sft_pipeline.pipeline.job_events import ParkRequest
from sft_pipeline.providers.bedrock_provider import STATE_BY_STATUS
from tests.integration.test_infrastructure import (
    ASL_FILES,
    RESOURCES,
    as_list,
    functions,
    granted_actions,
    load_asl,
    model_has_path,
    properties,
    ref_target,
    state_machine_for,
    waits_for_an_event,
)

[FINE_TUNE] = [path for path in ASL_FILES if path.name == "fine_tune.asl.json"]
STATES: dict[str, Any] = load_asl(FINE_TUNE)["States"]


def wait_task() -> tuple[str, dict[str, Any]]:
    [found] = [(name, state) for name, state in STATES.items() if waits_for_an_event(state)]
    return found


def test_the_wait_is_a_task_timed_by_the_poll_interval() -> None:
    name, state = wait_task()
    assert state["TimeoutSecondsPath"] == "$.job.next_wait_seconds"
    assert model_has_path(state["TimeoutSecondsPath"])
    # The loop that polls after a wait leads back into it.
    assert state["Next"] == "PollJob" and STATES["CheckJob"]["Default"] == name


def test_the_wait_hands_over_what_parking_needs_and_passes_the_state_on() -> None:
    _, state = wait_task()
    payload = state["Parameters"]["Payload"]
    assert {key.removesuffix(".$") for key in payload} == set(ParkRequest.model_fields)
    assert payload["task_token.$"] == "$$.Task.Token"
    assert payload["job_id.$"] == "$.job.job_id" and "job_id" in JobProgress.model_fields
    # Neither the wake-up call nor an error replaces the state the poll reads.
    assert state["ResultPath"] not in ("$", None) and state["ResultPath"] != "$.job"
    assert all(catcher["ResultPath"] == state["ResultPath"] for catcher in state["Catch"])


def test_a_timeout_polls_and_anything_else_falls_back_to_a_plain_wait() -> None:
    _, state = wait_task()
    by_error = {tuple(c["ErrorEquals"]): c["Next"] for c in state["Catch"]}
    assert by_error[("States.Timeout",)] == "PollJob"
    fallback = STATES[by_error[("States.ALL",)]]
    assert fallback == {
        "Type": "Wait",
        "SecondsPath": "$.job.next_wait_seconds",
        "Next": "PollJob",
    }


def test_the_state_machine_may_invoke_the_wait_function() -> None:
    _, state = wait_task()
    logical, props = state_machine_for(FINE_TUNE)
    substitution = state["Parameters"]["FunctionName"].removeprefix("${").removesuffix("}")
    function = ref_target(props["DefinitionSubstitutions"][substitution])
    assert function == "WaitForJobFunction"
    invocable = {
        ref_target(entry["LambdaInvokePolicy"]["FunctionName"])
        for entry in as_list(props["Policies"])
        if isinstance(entry, dict) and "LambdaInvokePolicy" in entry
    }
    assert function in invocable, logical


def api_routes() -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical, event["Properties"])
        for logical, resource in functions().items()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "Api"
    ]


def test_only_the_webhook_route_goes_without_a_bearer_key() -> None:
    public = [
        (logical, route["Path"])
        for logical, route in api_routes()
        if route.get("Auth", {}).get("Authorizer") == "NONE"
    ]
    assert public == [("JobWebhookFunction", "/webhooks/fine-tuning")]
    [webhook] = [route for logical, route in api_routes() if logical == "JobWebhookFunction"]
    assert webhook["Method"] == "post" and webhook["Auth"]["ApiKeyRequired"] is False


def test_the_bedrock_rule_matches_the_ended_statuses_the_provider_knows() -> None:
    [rule] = [
        (logical, event["Properties"]["Pattern"])
        for logical, resource in functions().items()
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "EventBridgeRule"
    ]
    logical, pattern = rule
    assert logical == "BedrockJobEventFunction"
    assert pattern["source"] == ["aws.bedrock"]
    assert pattern["detail-type"] == ["Model Customization Job State Change"]
    assert set(pattern["detail"]["jobStatus"]) == set(STATE_BY_STATUS)


def statements(function: str) -> list[dict[str, Any]]:
    return [
        statement
        for entry in as_list(properties(function)["Policies"])
        if isinstance(entry, dict) and "Statement" in entry
        for statement in as_list(entry["Statement"])
    ]


def names_the_fine_tune_state_machine(value: Any) -> bool:
    """A Ref to it, or (where a Ref would be a cycle) its ARN built from its fixed name."""
    if ref_target(value) == "FineTuneStateMachine":
        return True
    name = properties("FineTuneStateMachine")["Name"]["Fn::Sub"]
    arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
    return isinstance(value, dict) and value.get("Fn::Sub") == arn + name


def test_event_functions_wake_runs_of_the_fine_tune_state_machine_only() -> None:
    for function in ("JobWebhookFunction", "BedrockJobEventFunction", "WaitForJobFunction"):
        [wake] = [
            s for s in statements(function) if "states:SendTaskSuccess" in as_list(s["Action"])
        ]
        assert as_list(wake["Action"]) == ["states:SendTaskSuccess"]
        assert names_the_fine_tune_state_machine(wake["Resource"]), function
        assert not any(
            a.startswith("states:") for a in granted_actions(function) - {"states:SendTaskSuccess"}
        )


def test_the_wait_function_ends_waits_of_the_fine_tune_state_machine() -> None:
    variables = properties("WaitForJobFunction")["Environment"]["Variables"]
    assert names_the_fine_tune_state_machine(variables["STATE_MACHINE_ARN"])


def test_the_registry_rights_of_the_fast_path_are_limited_to_its_own_items() -> None:
    expected = {
        "WaitForJobFunction": {"dynamodb:PutItem": {"JOBID#*"}, "dynamodb:DeleteItem": {"JOBID#*"}},
        "JobWebhookFunction": {
            "dynamodb:PutItem": {"EVENT#*", "JOBID#*"},
            "dynamodb:DeleteItem": {"EVENT#*", "JOBID#*"},
        },
        "BedrockJobEventFunction": {
            "dynamodb:PutItem": {"EVENT#*", "JOBID#*"},
            "dynamodb:DeleteItem": {"EVENT#*", "JOBID#*"},
        },
    }
    for function, rights in expected.items():
        found: dict[str, set[str]] = {}
        for statement in statements(function):
            for action in as_list(statement["Action"]):
                if not action.startswith("dynamodb:"):
                    continue
                assert ref_target(statement["Resource"]) == "RegistryTable", function
                keys = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                found.setdefault(action, set()).update(keys)
        assert found == rights, function
        assert not any(a.startswith("dynamodb:") for a in granted_actions(function, set()))


def test_the_webhook_secret_is_read_by_the_webhook_function_alone() -> None:
    readers = {
        logical
        for logical in functions()
        for entry in as_list(properties(logical).get("Policies", []))
        if isinstance(entry, dict)
        and ref_target(entry.get("AWSSecretsManagerGetSecretValuePolicy", {}).get("SecretArn"))
        == "OpenAIWebhookSecret"
    }
    assert readers == {"JobWebhookFunction"}
    assert RESOURCES["OpenAIWebhookSecret"]["Type"] == "AWS::SecretsManager::Secret"


def test_parked_waits_and_deliveries_expire_by_the_tables_ttl() -> None:
    ttl = properties("RegistryTable")["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert TTL_ATTRIBUTE in WaitToken.model_fields
