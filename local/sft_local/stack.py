"""The embedded local stack: the whole pipeline on one laptop, with no AWS account,
no OpenAI key and no Docker.

moto plays AWS (its Step Functions interpreter runs the real ASL), the Lambda
seam runs the real handlers in-process, the OpenAI emulator plays OpenAI and a
local receiver plays Slack. Every resource is created from template.yaml itself:
names, key schemas, environment variables and state-machine substitutions come
from that file, so the local stack cannot drift from what deploys.

Not emulated: IAM, KMS and bucket-policy enforcement (moto cannot tell TLS from plain
requests, so the TLS-only policy is left out), CloudWatch logs and alarms, lifecycle rules.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from unittest import mock

import boto3
from moto import mock_aws

from sft_local import lambda_seam
from sft_local.bedrock_standin import BedrockStandIn, BedrockTimeline
from sft_local.emulated_answers import DEFAULT_CHAT_LATENCY
from sft_local.lambda_seam import FunctionCode, LambdaSeam
from sft_local.openai_emulator import JobTimeline, OpenAIEmulator
from sft_local.slack_receiver import SlackReceiver
from sft_local.template import Resolver, load_template, parameter_values, resources_of_type
from sft_pipeline.adapters.training_bucket import parse_s3_uri
from sft_pipeline.jobs import UploadRef

if TYPE_CHECKING:
    from sft_local.api_server import LocalApiServer

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_NAME = "sft-local"
LOCAL_OPENAI_KEY = "sk-local-emulator"
# Fast defaults: the poll loop's waits come from the input, so they can be short here.
LOCAL_PARAMETERS = {
    "PollIntervalSeconds": "1",
    "MaxPollIntervalSeconds": "2",
    "NotificationEmail": "you@example.com",
}
# Serves the providers' webhooks (template.yaml).
WEBHOOK_FUNCTION = "JobWebhookFunction"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


class LocalStack:
    """Context manager: the pipeline, provisioned from template.yaml, running locally."""

    def __init__(
        self,
        *,
        parameters: dict[str, str] | None = None,
        timeline: JobTimeline | None = None,
        bedrock_timeline: BedrockTimeline | None = None,
        time_scale: float = 0.02,
        chat_latency: float = DEFAULT_CHAT_LATENCY,
        template_path: Path = REPO / "template.yaml",
        function_logs: TextIO | None = None,
    ) -> None:
        self.template_path = template_path
        self.template = load_template(template_path)
        self.time_scale = time_scale
        # Models answer after ``chat_latency`` seconds, as a provider's would; 0 for instant.
        self.openai = OpenAIEmulator(
            timeline=timeline or JobTimeline(validating=0.3, queued=0.3, running=1.0),
            chat_latency=chat_latency,
        )
        self.slack = SlackReceiver()
        self.bedrock = BedrockStandIn(
            read_object=_read_s3,
            write_object=_write_s3,
            timeline=bedrock_timeline
            or BedrockTimeline(training=1.0, validating=0.2, stopping=0.2, deploying=0.3),
            chat_latency=chat_latency,
        )
        # What the stack's webhook secret holds, and so what the emulator signs webhooks with.
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self._parameter_overrides = {**LOCAL_PARAMETERS, **(parameters or {})}
        self._function_logs = function_logs
        self._exit = ExitStack()
        self.resolver: Resolver
        self.seam: LambdaSeam
        # Serves the webhook route (and any other) while the stack runs.
        self.api: LocalApiServer
        self.mailbox_url = ""

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalStack:
        try:
            self._exit.enter_context(mock.patch.dict(os.environ, FAKE_CREDENTIALS))
            self._exit.enter_context(self.openai)
            self._exit.enter_context(self.slack)
            self._exit.enter_context(self.bedrock)
            self._exit.enter_context(
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
            )
            # moto logs every Fail state at length; the history says the same, briefly.
            logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
            self.seam = LambdaSeam(
                functions={}, send_to_queue=self._send_to_queue, log_stream=self._function_logs
            )
            self._exit.enter_context(lambda_seam.installed(self.seam, self.time_scale))
            self._exit.callback(self.seam.close)
            self._provision()
            self._exit.callback(self._stop_running_executions)
            self._send_job_events()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._exit.close()

    # ------------------------------------------------------------ provisioning

    def _provision(self) -> None:
        parameters = parameter_values(self.template, self._parameter_overrides)
        parameters["OpenAIBaseUrl"] = self.openai.base_url
        self.resolver = Resolver(
            parameters=parameters,
            pseudo={
                "AWS::AccountId": ACCOUNT,
                "AWS::Region": REGION,
                "AWS::StackName": STACK_NAME,
                "AWS::Partition": "aws",
                "AWS::NoValue": "",
            },
            conditions=self.template.get("Conditions", {}),
        )
        self._name_functions_and_state_machines()
        for logical, resource in resources_of_type(self.template, "AWS::KMS::Key").items():
            key = boto3.client("kms").create_key(
                Description=resource["Properties"].get("Description", "")
            )
            self._record(logical, key["KeyMetadata"]["KeyId"], Arn=key["KeyMetadata"]["Arn"])
        self._create_queues()
        self._create_roles()
        self._create_secrets()
        self._create_tables()
        self._create_topics()
        self._create_buckets()
        self._create_functions()
        self._create_state_machines()
        self._wire_events()

    def _physical_name(self, logical: str) -> str:
        return f"{STACK_NAME}-{logical}"[:64]

    def _record(self, logical: str, ref: str, **attributes: str) -> None:
        self.resolver.refs[logical] = ref
        for attribute, value in attributes.items():
            self.resolver.attributes[(logical, attribute)] = value

    def _name_functions_and_state_machines(self) -> None:
        """Functions and state machines refer to each other: their ARNs are known up front."""
        for logical in resources_of_type(self.template, "AWS::Serverless::Function"):
            name = self._physical_name(logical)
            self._record(logical, name, Arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
        for logical in resources_of_type(self.template, "AWS::Serverless::StateMachine"):
            name = self._physical_name(logical)
            self._record(
                logical, f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}", Name=name
            )
        # Served by sft_local.api_server, not by moto; references to them still resolve.
        for logical in resources_of_type(self.template, "AWS::Serverless::Api"):
            self._record(logical, "local", RootResourceId="local")
        for logical in resources_of_type(self.template, "AWS::Logs::LogGroup"):
            name = f"/local/{self._physical_name(logical)}"
            self._record(logical, name, Arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}")

    def _create_queues(self) -> None:
        sqs = boto3.client("sqs")
        for logical in resources_of_type(self.template, "AWS::SQS::Queue"):
            name = self._physical_name(logical)
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            self._record(logical, url, Arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", QueueName=name)
        # Email subscribers are played by a queue: what it receives is what the email would say.
        self.mailbox_url = sqs.create_queue(QueueName=f"{STACK_NAME}-mailbox")["QueueUrl"]

    def _create_roles(self) -> None:
        iam = boto3.client("iam")
        for logical, resource in resources_of_type(self.template, "AWS::IAM::Role").items():
            props = self.resolver.resolve(resource["Properties"])
            name = self._physical_name(logical)
            arn = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
            )["Role"]["Arn"]
            self._record(logical, name, Arn=arn)

    def _create_secrets(self) -> None:
        local_values = {
            "OpenAIApiKeySecret": LOCAL_OPENAI_KEY,
            "SlackWebhookSecret": self.slack.url,
            "OpenAIWebhookSecret": self.webhook_secret,
        }
        client = boto3.client("secretsmanager")
        for logical, resource in resources_of_type(
            self.template, "AWS::SecretsManager::Secret"
        ).items():
            value = local_values.get(logical, resource["Properties"].get("SecretString", ""))
            arn = client.create_secret(Name=self._physical_name(logical), SecretString=value)["ARN"]
            self._record(logical, arn)

    def _create_tables(self) -> None:
        client = boto3.client("dynamodb")
        for logical, resource in resources_of_type(self.template, "AWS::DynamoDB::Table").items():
            props = self.resolver.resolve(resource["Properties"])
            name = self._physical_name(logical)
            client.create_table(
                TableName=name,
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                GlobalSecondaryIndexes=props.get("GlobalSecondaryIndexes", []),
                BillingMode=props["BillingMode"],
            )
            if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
                client.update_continuous_backups(
                    TableName=name,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
            self._record(logical, name, Arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")

    def _create_topics(self) -> None:
        sns = boto3.client("sns")
        for logical, resource in resources_of_type(self.template, "AWS::SNS::Topic").items():
            props = self.resolver.resolve(resource["Properties"])
            name = self._physical_name(logical)
            arn = sns.create_topic(
                Name=name, Attributes={"KmsMasterKeyId": props.get("KmsMasterKeyId", "")}
            )["TopicArn"]
            self._record(logical, arn, TopicName=name)
        for resource in resources_of_type(self.template, "AWS::SNS::Subscription").values():
            if "Condition" in resource and not self.resolver.condition(resource["Condition"]):
                continue
            props = self.resolver.resolve(resource["Properties"])
            if props["Protocol"] == "email":
                mailbox_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK_NAME}-mailbox"
                sns.subscribe(
                    TopicArn=props["TopicArn"],
                    Protocol="sqs",
                    Endpoint=mailbox_arn,
                    Attributes={"RawMessageDelivery": "true"},
                )

    def _create_buckets(self) -> None:
        s3 = boto3.client("s3")
        for logical, resource in resources_of_type(self.template, "AWS::S3::Bucket").items():
            props = self.resolver.resolve(resource["Properties"])
            name = props.get("BucketName") or self._physical_name(logical).lower()
            s3.create_bucket(Bucket=name)
            if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            if "BucketEncryption" in props:
                s3.put_bucket_encryption(
                    Bucket=name,
                    ServerSideEncryptionConfiguration={
                        # CloudFormation and the S3 API spell the same rule differently.
                        "Rules": [
                            {
                                "ApplyServerSideEncryptionByDefault": rule[
                                    "ServerSideEncryptionByDefault"
                                ],
                                "BucketKeyEnabled": rule.get("BucketKeyEnabled", False),
                            }
                            for rule in props["BucketEncryption"][
                                "ServerSideEncryptionConfiguration"
                            ]
                        ]
                    },
                )
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=name,
                    PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"],
                )
            if "LifecycleConfiguration" in props:
                rules = props["LifecycleConfiguration"]["Rules"]
                s3.put_bucket_lifecycle_configuration(
                    Bucket=name,
                    LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]},
                )
            self._record(logical, name, Arn=f"arn:aws:s3:::{name}")

    def _create_functions(self) -> None:
        client = boto3.client("lambda")
        role = boto3.client("iam").create_role(
            RoleName=f"{STACK_NAME}-functions",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        defaults = self.template.get("Globals", {}).get("Function", {})
        queue_urls = {
            self.resolver.attributes[(q, "Arn")]: self.resolver.refs[q]
            for q in resources_of_type(self.template, "AWS::SQS::Queue")
        }
        for logical, resource in resources_of_type(
            self.template, "AWS::Serverless::Function"
        ).items():
            props = {**defaults, **resource["Properties"]}
            environment = {
                **defaults.get("Environment", {}).get("Variables", {}),
                **resource["Properties"].get("Environment", {}).get("Variables", {}),
            }
            variables = {
                **{key: str(value) for key, value in self.resolver.resolve(environment).items()},
                # Bedrock calls go to the stand-in: moto's Bedrock jobs never finish.
                "BEDROCK_ENDPOINT_URL": self.bedrock.endpoint_url,
                "BEDROCK_RUNTIME_ENDPOINT_URL": self.bedrock.endpoint_url,
            }
            name = self.resolver.refs[logical]
            client.create_function(
                FunctionName=name,
                Runtime=props["Runtime"],
                Role=role,
                Handler=props["Handler"],
                Code={"ZipFile": _placeholder_zip()},
                Timeout=int(props["Timeout"]),
                MemorySize=int(props["MemorySize"]),
                Environment={"Variables": variables},
            )
            invoke_config = self.resolver.resolve(
                resource["Properties"].get("EventInvokeConfig", {})
            )
            on_failure = (
                invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            )
            self.seam.functions[name] = FunctionCode(
                path=REPO / props["CodeUri"],
                handler=props["Handler"],
                environment=variables,
                max_async_retries=int(invoke_config.get("MaximumRetryAttempts", 2)),
                on_failure_queue_url=queue_urls.get(on_failure) if on_failure else None,
            )

    def _create_state_machines(self) -> None:
        client = boto3.client("stepfunctions")
        for logical, resource in resources_of_type(
            self.template, "AWS::Serverless::StateMachine"
        ).items():
            props = resource["Properties"]
            definition = (self.template_path.parent / props["DefinitionUri"]).read_text()
            for key, value in self.resolver.resolve(
                props.get("DefinitionSubstitutions", {})
            ).items():
                definition = definition.replace("${" + key + "}", str(value))
            client.create_state_machine(
                name=self.resolver.attributes[(logical, "Name")],
                definition=definition,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/{STACK_NAME}-states",
                type=props.get("Type", "STANDARD"),
            )

    def _wire_events(self) -> None:
        """S3 notifications, SNS subscriptions and EventBridge rules from the functions'
        Events (API routes are served by sft_local.api_server)."""
        notifications: dict[str, list[dict[str, Any]]] = {}
        for logical, resource in resources_of_type(
            self.template, "AWS::Serverless::Function"
        ).items():
            arn = self.resolver.attributes[(logical, "Arn")]
            for event_name, event in resource["Properties"].get("Events", {}).items():
                if event["Type"] not in ("S3", "SNS", "EventBridgeRule"):
                    continue
                props = self.resolver.resolve(event["Properties"])
                if event["Type"] == "EventBridgeRule":
                    # moto matches the pattern; the seam invokes the function, as EventBridge would.
                    rule = self._physical_name(f"{logical}{event_name}")
                    events = boto3.client("events")
                    events.put_rule(Name=rule, EventPattern=json.dumps(props["Pattern"]))
                    events.put_targets(Rule=rule, Targets=[{"Id": logical, "Arn": arn}])
                elif event["Type"] == "S3":
                    rules = props.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                    notifications.setdefault(props["Bucket"], []).append(
                        {
                            "LambdaFunctionArn": arn,
                            "Events": [props["Events"]]
                            if isinstance(props["Events"], str)
                            else props["Events"],
                            "Filter": {"Key": {"FilterRules": rules}},
                        }
                    )
                elif event["Type"] == "SNS":
                    attributes = (
                        {"FilterPolicy": json.dumps(props["FilterPolicy"])}
                        if "FilterPolicy" in props
                        else {}
                    )
                    boto3.client("sns").subscribe(
                        TopicArn=props["Topic"],
                        Protocol="lambda",
                        Endpoint=arn,
                        Attributes=attributes,
                    )
        for bucket, configurations in notifications.items():
            boto3.client("s3").put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={"LambdaFunctionConfigurations": configurations},
            )

    def _send_job_events(self) -> None:
        """The providers tell of their jobs' ends: the OpenAI emulator by signed webhooks to
        the API's webhook route, the Bedrock stand-in through EventBridge (moto's, whose rule
        invokes the function). Both stop before moto's mock does."""
        from sft_local.api_server import LocalApiServer  # noqa: PLC0415 (it builds on this module)

        self.api = self._exit.enter_context(LocalApiServer(self))
        self.openai.send_webhooks_to(self.api.url(self.webhook_path), self.webhook_secret)
        self._exit.callback(self.openai.job_events.stop)
        events = boto3.client("events")
        self.bedrock.publish_job_events_to(lambda entry: events.put_events(Entries=[entry]))
        self._exit.callback(self.bedrock.job_events.stop)

    @property
    def webhook_path(self) -> str:
        """The API route the webhook function serves (the one without the bearer key)."""
        events = self.template["Resources"][WEBHOOK_FUNCTION]["Properties"]["Events"]
        [path] = [
            event["Properties"]["Path"] for event in events.values() if event["Type"] == "Api"
        ]
        return str(path)

    def _send_to_queue(self, url: str, body: str) -> None:
        boto3.client("sqs").send_message(QueueUrl=url, MessageBody=body)

    # ------------------------------------------------------------ what users and tests do

    def override_environment(self, variables: dict[str, str]) -> None:
        """Change every function's environment where it names these variables (e.g. the
        API's base URL, once a local API server is listening)."""
        for code in self.seam.functions.values():
            for name, value in variables.items():
                if name in code.environment:
                    code.environment[name] = value

    def ref(self, logical: str) -> str:
        return self.resolver.refs[logical]

    @property
    def bucket(self) -> str:
        return self.ref("TrainingBucket")

    @property
    def state_machine_arn(self) -> str:
        return self.ref("FineTuneStateMachine")

    def table(self) -> Any:
        # The region named, not read from the environment a running function may be swapping.
        return boto3.resource("dynamodb", region_name=REGION).Table(self.ref("RegistryTable"))

    def upload(self, data: bytes, key: str, metadata: dict[str, str] | None = None) -> UploadRef:
        """Put a training file in the bucket; S3 triggers validation as it would on AWS."""
        response = boto3.client("s3").put_object(
            Bucket=self.bucket, Key=key, Body=data, Metadata=metadata or {}
        )
        return UploadRef(bucket=self.bucket, key=key, version_id=response.get("VersionId"))

    def execution_arn(self, upload: UploadRef) -> str:
        return (
            self.state_machine_arn.replace(":stateMachine:", ":execution:")
            + ":"
            + upload.execution_name
        )

    def settle(self) -> None:
        """Let S3 and SNS deliver what they have queued (validation, Slack posts)."""
        self.seam.settle()

    def wait_for_execution(self, upload: UploadRef, timeout: float = 60.0) -> dict[str, Any]:
        self.settle()
        client = boto3.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            description: dict[str, Any] = client.describe_execution(
                executionArn=self.execution_arn(upload)
            )
            if description["status"] != "RUNNING":
                return description
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"execution {upload.execution_name} still running after {timeout}s"
                )
            time.sleep(0.02)

    def execution_status(self, upload: UploadRef) -> str:
        status: str = boto3.client("stepfunctions").describe_execution(
            executionArn=self.execution_arn(upload)
        )["status"]
        return status

    def history(self, upload: UploadRef) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = boto3.client("stepfunctions").get_execution_history(
            executionArn=self.execution_arn(upload)
        )["events"]
        return events

    def executions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = boto3.client("stepfunctions").list_executions(
            stateMachineArn=self.state_machine_arn
        )["executions"]
        return found

    def emails(self) -> list[str]:
        """Notifications as the email subscriber would read them (drains the mailbox)."""
        return _drain(self.mailbox_url)

    def dead_letters(self, queue_logical_id: str) -> list[dict[str, Any]]:
        return [json.loads(body) for body in _drain(self.ref(queue_logical_id))]

    def read_object(self, uri: str) -> bytes:
        return _read_s3(uri)

    def _stop_running_executions(self) -> None:
        """Nothing may outlive moto's mock, or it would call real AWS endpoints."""
        client = boto3.client("stepfunctions")
        for execution in self.executions():
            if execution["status"] == "RUNNING":
                client.stop_execution(
                    executionArn=execution["executionArn"], cause="local stack shut down"
                )


def _drain(queue_url: str) -> list[str]:
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _read_s3(uri: str) -> bytes:
    bucket, key = parse_s3_uri(uri)
    body: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _write_s3(uri: str, body: bytes) -> None:
    bucket, key = parse_s3_uri(uri)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A lifecycle rule as CloudFormation spells it, in the S3 API's spelling."""
    prefix = {"Prefix": rule["Prefix"]} if "Prefix" in rule else {}
    tags = rule.get("TagFilters", [])
    if tags and prefix:
        where: dict[str, Any] = {"And": {**prefix, "Tags": tags}}
    elif tags:
        where = {"Tag": tags[0]} if len(tags) == 1 else {"And": {"Tags": tags}}
    else:
        where = prefix
    api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": where}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        days = rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(days)}
    return api


def _placeholder_zip() -> bytes:
    """moto wants a code package; the seam runs the handler from its folder instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# runs in-process through sft_local.lambda_seam\n")
    return buffer.getvalue()


@contextmanager
def local_stack(**options: Any) -> Iterator[LocalStack]:
    with LocalStack(**options) as stack:
        yield stack
