"""``sft keys``: create, list and revoke against moto, by table or by stack, and the adapters
behind it (usage keys in API Gateway, stack outputs from CloudFormation). The key is
printed once, on create; no command ever prints a hash."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.stack_outputs import StackNotFoundError, stack_outputs
from sft_pipeline.adapters.usage_keys import UsageKeys
from sft_pipeline.api_keys import key_hash
from tests.fakes import registry_table
from tests.unit.test_cli import run_cli

REGION = "us-east-1"
SECRET = re.compile(r"sk-sft-[A-Za-z0-9_-]{43}")
Capture = pytest.CaptureFixture[str]


class Deployment:
    """A registry table and a usage plan in moto, and a stack whose outputs name both."""

    stack_name = "sft-prod"

    def __init__(self) -> None:
        self.table = registry_table()
        self.registry = Registry(self.table)
        self.apigateway = boto3.client("apigateway", region_name=REGION)
        self.usage_plan_id = self.apigateway.create_usage_plan(name="inference")["id"]
        self.cloudformation = boto3.client("cloudformation", region_name=REGION)
        self.deploy(
            self.stack_name, RegistryTableName=self.table.name, UsagePlanId=self.usage_plan_id
        )

    def deploy(self, name: str, **outputs: str) -> None:
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        self.cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))

    def usage_key(self, usage_key_id: str) -> dict[str, Any]:
        key: dict[str, Any] = self.apigateway.get_api_key(apiKey=usage_key_id, includeValue=True)
        return key

    def plan_key_ids(self) -> list[str]:
        keys = self.apigateway.get_usage_plan_keys(usagePlanId=self.usage_plan_id)["items"]
        return [key["id"] for key in keys]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield Deployment()


def keys(capsys: Capture, *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "keys", *args)


def create(capsys: Capture, name: str, *where: str) -> str:
    """Create a key; returns the key as printed."""
    code, out, _ = keys(capsys, "create", "--name", name, *where)
    assert code == 0
    printed: list[str] = SECRET.findall(out)
    [secret] = printed
    return secret


def assert_one_stderr_line(err: str, *fragments: str) -> None:
    assert err.startswith("sft: ")
    assert err.count("\n") == 1
    for fragment in fragments:
        assert fragment in err


# Create


def test_create_by_table_prints_the_key_once_and_stores_only_its_hash(
    aws: Deployment, capsys: Capture
) -> None:
    code, out, err = keys(
        capsys, "create", "--name", "ci bot", "--table", aws.table.name,
        "--usage-plan-id", aws.usage_plan_id, "--region", REGION,
    )  # fmt: skip
    assert (code, err) == (0, "")
    [secret] = SECRET.findall(out)
    assert "cannot be shown again" in out
    [record] = aws.registry.list_api_keys()
    assert record.key_hash == key_hash(secret)
    assert (record.name, record.active) == ("ci bot", True)
    assert record.key_id in out
    assert record.key_hash not in out
    assert secret not in str(aws.table.scan()["Items"])
    assert record.usage_key_id is not None
    usage_key = aws.usage_key(record.usage_key_id)
    assert (usage_key["name"], usage_key["value"], usage_key["enabled"]) == (
        "sft-ci bot",
        record.key_hash,
        True,
    )
    assert aws.plan_key_ids() == [record.usage_key_id]


def test_create_by_stack_finds_the_table_and_the_usage_plan(
    aws: Deployment, capsys: Capture
) -> None:
    secret = create(capsys, "support app", "--stack", aws.stack_name, "--region", REGION)
    record = aws.registry.get_api_key(key_hash(secret))
    assert record is not None
    assert record.usage_key_id is not None
    assert aws.plan_key_ids() == [record.usage_key_id]


def test_create_without_a_usage_plan_stores_the_key_unthrottled(
    aws: Deployment, capsys: Capture
) -> None:
    code, out, err = keys(capsys, "create", "--name", "local", "--table", aws.table.name)
    assert code == 0
    assert SECRET.search(out)
    assert_one_stderr_line(err, "warning: no usage plan")
    [record] = aws.registry.list_api_keys()
    assert record.usage_key_id is None
    assert aws.plan_key_ids() == []


def test_create_as_json_carries_the_key_and_never_the_hash(
    aws: Deployment, capsys: Capture
) -> None:
    code, out, err = keys(capsys, "create", "--name", "ci", "--table", aws.table.name, "--json")
    assert code == 0
    shown = json.loads(out)
    assert set(shown) == {
        "key", "key_id", "name", "scope", "created_at", "revoked_at", "usage_key_id", "active",
    }  # fmt: skip
    assert (shown["name"], shown["scope"], shown["active"], shown["revoked_at"]) == (
        "ci",
        "inference",
        True,
        None,
    )
    assert aws.registry.get_api_key(key_hash(shown["key"])) is not None
    assert key_hash(shown["key"]) not in out
    assert "cannot be shown again" in err


def test_keys_are_inference_keys_unless_created_with_scope_admin(
    aws: Deployment, capsys: Capture
) -> None:
    plain = create(capsys, "web app", "--table", aws.table.name)
    code, out, _ = keys(
        capsys, "create", "--name", "ops", "--scope", "admin", "--table", aws.table.name
    )
    assert code == 0
    assert "Created admin API key" in out
    [admin] = SECRET.findall(out)
    scopes = {
        secret: record.scope
        for secret in (plain, admin)
        if (record := aws.registry.get_api_key(key_hash(secret))) is not None
    }
    assert scopes == {plain: "inference", admin: "admin"}


# List and revoke


def test_list_shows_ids_names_and_dates_but_never_a_hash_or_key(
    aws: Deployment, capsys: Capture
) -> None:
    secrets = [create(capsys, name, "--table", aws.table.name) for name in ("ci bot", "app")]
    code, out, _ = keys(capsys, "list", "--table", aws.table.name)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["KEY", "ID", "NAME", "SCOPE", "CREATED", "REVOKED"]
    for row, record in zip(rows, aws.registry.list_api_keys(), strict=True):
        assert row.startswith(f"{record.key_id}  {record.name}")
        assert f" {record.scope} " in row
        assert record.created_at.isoformat(timespec="seconds") in row
        assert row.endswith("-")
    for secret in secrets:
        assert secret not in out
        assert key_hash(secret) not in out


def test_revoke_refuses_the_key_from_then_on_and_disables_its_usage_key(
    aws: Deployment, capsys: Capture
) -> None:
    secret = create(capsys, "ci bot", "--stack", aws.stack_name)
    record = aws.registry.get_api_key(key_hash(secret))
    assert record is not None
    assert record.usage_key_id is not None
    code, out, _ = keys(capsys, "revoke", record.key_id, "--stack", aws.stack_name)
    assert code == 0
    assert out.startswith(f"Revoked {record.key_id} (ci bot) at ")
    revoked = aws.registry.get_api_key(record.key_hash)
    assert revoked is not None
    assert not revoked.active
    assert aws.usage_key(record.usage_key_id)["enabled"] is False

    code, again, _ = keys(capsys, "revoke", record.key_id, "--table", aws.table.name)
    assert (code, again) == (0, out)
    _, listed, _ = keys(capsys, "list", "--stack", aws.stack_name, "--json")
    [shown] = json.loads(listed)
    assert (shown["key_id"], shown["active"]) == (record.key_id, False)
    assert shown["revoked_at"] == revoked.model_dump(mode="json")["revoked_at"]
    assert "key_hash" not in shown
    assert secret not in listed + out


def test_revoking_an_unknown_key_exits_1(aws: Deployment, capsys: Capture) -> None:
    code, out, err = keys(capsys, "revoke", "key_000000000000", "--table", aws.table.name)
    assert (code, out) == (1, "")
    assert_one_stderr_line(err, "no API key with id 'key_000000000000'")


def test_revoke_given_the_key_itself_refuses_without_echoing_it(
    aws: Deployment, capsys: Capture
) -> None:
    secret = create(capsys, "ci bot", "--table", aws.table.name)
    code, out, err = keys(capsys, "revoke", secret, "--table", aws.table.name)
    assert (code, out) == (2, "")
    assert "not its id" in err
    assert secret not in err
    assert aws.registry.list_api_keys()[0].active


# Errors: one line on stderr, never a traceback


def test_an_unknown_stack_exits_2(aws: Deployment, capsys: Capture) -> None:
    code, _, err = keys(capsys, "list", "--stack", "no-such-stack")
    assert code == 2
    assert_one_stderr_line(err, "no stack named 'no-such-stack'")


def test_a_stack_without_a_registry_output_exits_2(aws: Deployment, capsys: Capture) -> None:
    aws.deploy("other-app", Url="https://example.com")
    code, _, err = keys(capsys, "list", "--stack", "other-app")
    assert code == 2
    assert_one_stderr_line(err, "has no RegistryTableName output")


def test_an_unknown_table_exits_2(aws: Deployment, capsys: Capture) -> None:
    code, _, err = keys(capsys, "list", "--table", "no-such-table")
    assert code == 2
    assert_one_stderr_line(err, "registry table 'no-such-table' does not exist")


def test_no_aws_credentials_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = keys(capsys, "list", "--table", "registry", "--region", REGION)
    assert code == 2
    assert_one_stderr_line(err, "cannot reach AWS", "credentials")


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["list", "--table", "t", "--stack", "s"],
        ["create", "--table", "t"],
        ["create", "--name", "no/slashes", "--table", "t"],
        ["create", "--name", "", "--table", "t"],
        ["create", "--name", "x", "--scope", "root", "--table", "t"],
        ["revoke", "--table", "t"],
        ["rotate", "--table", "t"],
    ],
)
def test_misuse_exits_2(args: list[str], capsys: Capture) -> None:
    code, out, err = keys(capsys, *args)
    assert (code, out) == (2, "")
    assert "usage: sft keys" in err


# The adapters behind the command


def test_stack_outputs_reads_every_output(aws: Deployment) -> None:
    assert stack_outputs(aws.cloudformation, aws.stack_name) == {
        "RegistryTableName": aws.table.name,
        "UsagePlanId": aws.usage_plan_id,
    }


def test_stack_outputs_of_a_missing_stack_raises_stack_not_found(aws: Deployment) -> None:
    with pytest.raises(StackNotFoundError, match="'gone'"):
        stack_outputs(aws.cloudformation, "gone")


def test_stack_outputs_passes_other_refusals_on() -> None:
    client = boto3.client("cloudformation", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_client_error("describe_stacks", "AccessDenied", "not allowed")
        with pytest.raises(client.exceptions.ClientError, match="not allowed"):
            stack_outputs(client, "sft-prod")


def test_a_usage_key_that_cannot_join_the_plan_is_removed(aws: Deployment) -> None:
    client = boto3.client("apigateway", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response("create_api_key", {"id": "abc123"})
        stub.add_client_error("create_usage_plan_key", "NotFoundException", "no such plan")
        stub.add_response("delete_api_key", {}, {"apiKey": "abc123"})
        with pytest.raises(client.exceptions.NotFoundException):
            UsageKeys(client, "missing-plan").create("ci bot", "0" * 64)
        stub.assert_no_pending_responses()


def test_disabling_a_usage_key_twice_or_a_deleted_one_is_fine(aws: Deployment) -> None:
    usage = UsageKeys(aws.apigateway, aws.usage_plan_id)
    usage_key_id = usage.create("ci bot", "0" * 64)
    usage.disable(usage_key_id)
    usage.disable(usage_key_id)
    assert aws.usage_key(usage_key_id)["enabled"] is False
    aws.apigateway.delete_api_key(apiKey=usage_key_id)
    usage.disable(usage_key_id)
