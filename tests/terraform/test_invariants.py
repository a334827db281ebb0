#!/usr/bin/env python3
"""Project invariants of terraform/, checked from the HCL itself (offline).

No provider schema can be downloaded here, so these checks read the
configuration with python-hcl2 and verify what the project promises:

  tags          every taggable aws_* resource sets tags (modules pass
                var.tags) and every root module's aws provider sets
                default_tags; launch templates tag instances and volumes
  iam-wildcard  no IAM statement allows action "*" on resource "*"
  variables     every variable has a type and a description
  wiring        module calls pass only declared inputs and every required
                one; module.X.Y references name declared outputs; the
                composition's terraform.tfvars.example sets every required
                variable and no undeclared one
  helm-outputs  the composition has the outputs the Helm values need
  ecr           ECR repositories immutable (but for one literal channel tag,
                equal to the operator's default tag), scan on push, KMS,
                lifecycle
  operator-iam  the operator's policy grants exactly the actions it calls,
                the api-worker's only its data-plane actions
  operator-iam-ownership  the operator's changes, deletes, tag writes and
                creates are conditioned on its ownership tags for this
                cluster (aws:ResourceTag, aws:RequestTag, aws:TagKeys), and
                the composition passes the operator's cluster id to the
                iam module
  worker-roles-iam  the operator's IAM actions reach only roles under the
                prefix; CreateRole and PutRolePermissionsBoundary only with
                the iam:PermissionsBoundary condition; no iam:PassRole
  side-tasks    the ECS scheduled task runs `api-worker sync-popular`
  network-endpoints  DynamoDB/S3 gateway and SQS, SNS, ECR, STS, logs
                interface VPC endpoints
  checkov-skips every inline checkov skip has a reason and is listed in
                .checkov.yaml
  lambda        the optional Lambda functions: provided.al2023, reserved
                concurrency, KMS, tracing, VPC, own log group; their role
                has the api-worker's data-plane policy (from the iam module)
                plus only the Lambda runtime's calls, no wildcard action and
                no managed policy; SQS mappings report batch item failures;
                API Gateway may invoke only from the given API
  zones         zones pinned by ID, not name; the HTTP API VPC link only in
                subnets of zones that support it; interface endpoints only in
                zones their service is offered in; instance types checked
                against each zone's offerings
  ecs-slr       the ECS capacity provider waits for the cluster (which makes
                ECS's service-linked role) or for that role itself
  node-role     the EKS node role has AmazonEC2ContainerRegistryReadOnly
  schedules     side-task schedules are DISABLED until schedules_enabled,
                which defaults to false and needs an image tag and the
                environment (preconditions)
  global-names  every account- or region-unique name carries the
                environment prefix (var.name, from local.name)
  first-apply   AAAA records only with a dual-stack domain; no Lambda
                reserved concurrency by default (a new account has none)
  events-rule   the EventBridge rule of the AWS change events matches
                sample CloudTrail events of every write the operator's
                consumer reads (sources, detail-type and request parameters
                from operator/src/events.rs) on its names (the prefix of
                operator/src/naming.rs), and not the same writes on other
                names or other services' events
  events-queue-policy  only EventBridge, for that rule (aws:SourceArn), may
                send to the queues its target names; no "*" principal in
                any Allow statement
  events-dlq    the rule's queue redrives to a dead-letter queue and the
                target has a dead_letter_config
  events-encryption  every SQS queue encrypted (SSE-SQS or KMS)
  events-trail  the module with the rule makes a CloudTrail trail that logs
                and records write management events (EventBridge gets
                CloudTrail's events only while a trail logs in the region)
  client-address  the api-worker finds the client behind the edge: the
                NLB target group does not preserve client addresses (the
                pods' peer is the NLB, in its subnets), health-checks the
                public /readyz or /healthz on the traffic port, and the edge
                and the composition output those subnets' CIDRs as
                MOVIEAPP_TRUSTED_PROXIES; the Lambda HTTP function trusts no
                proxy (MOVIEAPP_TRUSTED_PROXIES empty, last in its merge) and
                its environment variable refuses both settings. Variable
                names are read from model/src/lib.rs

Usage:
  test_invariants.py                       check terraform/ (must pass)
  test_invariants.py --negative DIR        DIR must violate every check
                                           (proves the checks can fail)
  test_invariants.py --self-test           both: terraform/ and the
                                           bundled negative fixture

Prints one line per check and a final `invariants: N passed, M failed`.
"""
from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import re
import sys
from dataclasses import dataclass, field

import hcl2
from hcl2 import SerializationOptions

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# --- what the rest of the project fixes --------------------------------------

# Helm values of charts/movieapp-operator and the MovieApp that the
# composition's outputs must feed.
REQUIRED_OUTPUTS = {
    "operator_role_arn": "serviceAccount.annotations.\"eks.amazonaws.com/role-arn\"",
    "operator_image_repository": "image.repository",
    "cluster_name": "cluster name",
    "api_worker_image_repository": "api-worker ECR URI",
    "api_endpoint": "API endpoint",
    "domain": "domain",
    "region": "operator --default-region",
    "api_worker_role_arns": "MovieApp spec.worker.serviceAccount annotation",
    "api_worker_trusted_proxies": "MovieApp spec.worker.env MOVIEAPP_TRUSTED_PROXIES",
    "api_worker_repository_name": "MovieApp spec.worker.image.repository",
    "registry": "docker login / helm registry login",
    "chart_repository": "helm push / helm install oci://",
    "events_queue_url": "operator.eventsQueueUrl (--events-queue-url)",
}

REQUIRED_ECR_REPOSITORIES = {"movieapp-operator", "api-worker", "charts/movieapp-operator"}

OPERATOR_ACTIONS = {
    "dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable",
    "dynamodb:DeleteTable", "dynamodb:DescribeContinuousBackups",
    "dynamodb:UpdateContinuousBackups", "dynamodb:DescribeTimeToLive",
    "dynamodb:UpdateTimeToLive", "dynamodb:TagResource",
    "dynamodb:UntagResource", "dynamodb:ListTagsOfResource",
    "sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes",
    "sqs:SetQueueAttributes", "sqs:DeleteQueue", "sqs:TagQueue",
    "sqs:UntagQueue", "sqs:ListQueueTags",
    "sns:CreateTopic", "sns:DeleteTopic", "sns:Subscribe", "sns:Unsubscribe",
    "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes",
    "sns:SetSubscriptionAttributes", "sns:TagResource", "sns:UntagResource",
    "sns:ListTagsForResource",
    "ecr:DescribeImages", "ecr:DescribeRepositories",
    # the AWS change-events consumer (--events-queue-url)
    "sqs:ReceiveMessage", "sqs:DeleteMessage",
    # the region's ownership tags, read once per resync round (aws/tagging.rs)
    "tag:GetResources",
    # the worker roles it makes (--worker-role-oidc-provider-arn)
    "iam:CreateRole", "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
    "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies", "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy", "iam:TagRole", "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
}

# Making a role, or changing its boundary, is allowed only with the worker
# boundary attached: without the condition the operator could make a role
# with any rights and have it assumed.
BOUNDED_IAM_ACTIONS = {"iam:CreateRole", "iam:PutRolePermissionsBoundary"}

# TransactWriteItems has no IAM action of its own: it is authorized per item
# as PutItem/UpdateItem (the items the api-worker writes in transactions).
SNS_SUBSCRIPTION_ACTIONS = {"sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes", "sns:Unsubscribe"}

API_WORKER_ACTIONS = {
    "dynamodb:DescribeTable",  # /readyz
    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
    "dynamodb:DeleteItem", "dynamodb:Query",
    "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
    "sns:Publish", "sns:GetTopicAttributes",  # GetTopicAttributes: /readyz
}

# aws_* resource types used here, by whether AWS lets them carry tags. A type
# in neither set fails the tags check until someone classifies it.
TAGGABLE = {
    "aws_vpc", "aws_default_security_group", "aws_internet_gateway",
    "aws_subnet", "aws_eip", "aws_nat_gateway", "aws_route_table",
    "aws_vpc_endpoint", "aws_security_group",
    "aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule",
    "aws_kms_key", "aws_cloudwatch_log_group", "aws_iam_role",
    "aws_iam_policy", "aws_iam_instance_profile", "aws_flow_log",
    "aws_eks_cluster", "aws_eks_node_group", "aws_eks_addon",
    "aws_eks_access_entry", "aws_iam_openid_connect_provider",
    "aws_launch_template", "aws_ecr_repository", "aws_ecs_cluster",
    "aws_ecs_capacity_provider", "aws_ecs_task_definition",
    "aws_ecs_service", "aws_scheduler_schedule_group", "aws_lb",
    "aws_lb_target_group", "aws_lb_listener", "aws_apigatewayv2_vpc_link",
    "aws_apigatewayv2_api", "aws_apigatewayv2_stage",
    "aws_apigatewayv2_domain_name", "aws_acm_certificate",
    "aws_autoscaling_group", "aws_sqs_queue", "aws_sns_topic",
    "aws_dynamodb_table", "aws_s3_bucket", "aws_secretsmanager_secret",
    "aws_lambda_function", "aws_lambda_event_source_mapping",
    "aws_cloudwatch_event_rule", "aws_cloudtrail",
}
NOT_TAGGABLE = {
    "aws_route", "aws_route_table_association", "aws_kms_alias",
    "aws_iam_role_policy", "aws_iam_role_policy_attachment",
    "aws_eks_access_policy_association", "aws_ecr_lifecycle_policy",
    "aws_ecr_repository_policy", "aws_ecs_cluster_capacity_providers",
    "aws_scheduler_schedule", "aws_apigatewayv2_integration",
    "aws_apigatewayv2_route", "aws_apigatewayv2_api_mapping",
    "aws_acm_certificate_validation", "aws_route53_record",
    "aws_lambda_permission", "aws_cloudwatch_event_target", "aws_sqs_queue_policy",
    "aws_sqs_queue_redrive_allow_policy", "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_ownership_controls", "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_lifecycle_configuration", "aws_s3_bucket_policy",
}

OPTIONS = SerializationOptions(strip_string_quotes=True, with_comments=True)


# --- loading -----------------------------------------------------------------

@dataclass
class Module:
    path: str
    blocks: dict = field(default_factory=dict)  # block type -> list of (file, labels, body)
    comments: list = field(default_factory=list)  # (file, comment text)

    def of(self, kind):
        return self.blocks.get(kind, [])

    @property
    def rel(self):
        return os.path.relpath(self.path, REPO)


def _collect_comments(node, out, fname):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("__comments__", "__inline_comments__") and isinstance(v, list):
                out.extend((fname, c.get("value", "") if isinstance(c, dict) else str(c)) for c in v)
            else:
                _collect_comments(v, out, fname)
    elif isinstance(node, list):
        for v in node:
            _collect_comments(v, out, fname)


def _walk_labels(kind, node, depth, labels, out, fname):
    """Flatten {"type": {"name": body}} into (file, [type, name], body)."""
    if depth == 0:
        out.append((fname, labels, node))
        return
    for key, value in node.items():
        if key.startswith("__"):
            continue
        _walk_labels(kind, value, depth - 1, labels + [key], out, fname)


LABEL_DEPTH = {"resource": 2, "data": 2, "variable": 1, "output": 1, "module": 1,
               "provider": 1, "locals": 0, "terraform": 0}


def load_module(path):
    mod = Module(path=path)
    for fname in sorted(glob.glob(os.path.join(path, "*.tf"))):
        with open(fname, encoding="utf-8") as f:
            doc = hcl2.load(f, serialization_options=OPTIONS)
        _collect_comments(doc, mod.comments, fname)
        for kind, entries in doc.items():
            if kind.startswith("__") or kind not in LABEL_DEPTH:
                continue
            for entry in entries:
                _walk_labels(kind, entry, LABEL_DEPTH[kind], [], mod.blocks.setdefault(kind, []), fname)
    return mod


def module_dirs(root):
    dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(root, "**", "*.tf"), recursive=True)})
    return [d for d in dirs if "/.terraform" not in d]


def is_root_module(mod):
    return bool(mod.of("provider")) or any("backend" in body for _, _, body in mod.of("terraform"))


# --- helpers -----------------------------------------------------------------

def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def block_items(body, name):
    """Static and dynamic blocks of one type inside a body."""
    items = [b for b in as_list(body.get(name)) if isinstance(b, dict)]
    for dyn in as_list(body.get("dynamic")):
        if isinstance(dyn, dict) and name in dyn:
            for content in as_list(dyn[name].get("content")):
                if isinstance(content, dict):
                    items.append(content)
    return items


def literal_strings(v):
    return [x for x in as_list(v) if isinstance(x, str)]


class Report:
    def __init__(self):
        self.results = {}

    def check(self, name, violations):
        self.results[name] = list(violations)


# --- the checks --------------------------------------------------------------

def check_tags(mods):
    bad = []
    for mod in mods:
        for fname, (rtype, rname), body in mod.of("resource"):
            if not rtype.startswith("aws_"):
                continue
            addr = f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}"
            if rtype in NOT_TAGGABLE:
                continue
            if rtype not in TAGGABLE:
                bad.append(f"{addr}: resource type not classified as taggable or not (add it to TAGGABLE or NOT_TAGGABLE)")
                continue
            if rtype == "aws_autoscaling_group":
                if not block_items(body, "tag"):
                    bad.append(f"{addr}: no tag blocks (default_tags do not reach instances)")
                continue
            if "tags" not in body:
                bad.append(f"{addr}: no tags")
            if rtype == "aws_launch_template":
                kinds = {ts.get("resource_type") for ts in block_items(body, "tag_specifications")}
                missing = {"instance", "volume"} - kinds
                if missing:
                    bad.append(f"{addr}: no tag_specifications for {', '.join(sorted(missing))}")
        if is_root_module(mod):
            providers = [(f, l, b) for f, l, b in mod.of("provider") if l[0] == "aws"]
            if not providers:
                bad.append(f"{mod.rel}: root module without a provider \"aws\" block (default_tags)")
            for fname, _, body in providers:
                dts = block_items(body, "default_tags")
                if not dts or "tags" not in dts[0]:
                    bad.append(f"{os.path.relpath(fname, REPO)}: provider \"aws\" without default_tags {{ tags = ... }}")
    return bad


_JSON_ACTION_STAR = re.compile(r'"?Action"?\s*[=:]\s*\[?\s*\\?"\*\\?"')
_JSON_RESOURCE_STAR = re.compile(r'"?Resource"?\s*[=:]\s*\[?\s*\\?"\*\\?"')


def check_iam_wildcard(mods):
    bad = []
    for mod in mods:
        for fname, labels, body in mod.of("data"):
            if labels[0] != "aws_iam_policy_document":
                continue
            for st in block_items(body, "statement"):
                if st.get("effect", "Allow") != "Allow":
                    continue
                actions = literal_strings(st.get("actions"))
                resources = literal_strings(st.get("resources"))
                if "*" in actions and ("*" in resources or "resources" not in st):
                    bad.append(f"{os.path.relpath(fname, REPO)}: data.aws_iam_policy_document.{labels[1]}: statement allows \"*\" on \"*\"")
        # Inline JSON policies (jsonencode or heredoc) on any resource.
        for fname, (rtype, rname), body in mod.of("resource"):
            for attr in ("policy", "assume_role_policy", "inline_policy"):
                text = body.get(attr)
                if isinstance(text, str) and _JSON_ACTION_STAR.search(text) and _JSON_RESOURCE_STAR.search(text):
                    bad.append(f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}.{attr}: allows \"*\" on \"*\"")
    return bad


def check_variables(mods):
    bad = []
    for mod in mods:
        for fname, (vname,), body in mod.of("variable"):
            where = f"{os.path.relpath(fname, REPO)}: variable \"{vname}\""
            if "type" not in body:
                bad.append(f"{where}: no type")
            desc = body.get("description")
            if not isinstance(desc, str) or not desc.strip():
                bad.append(f"{where}: no description")
    return bad


def check_wiring(mods, by_path):
    bad = []
    ref = re.compile(r"module\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
    for mod in mods:
        calls = {}
        for fname, (mname,), body in mod.of("module"):
            src = body.get("source", "")
            target = os.path.normpath(os.path.join(mod.path, src))
            where = f"{os.path.relpath(fname, REPO)}: module \"{mname}\""
            if not src.startswith(".") or target not in by_path:
                bad.append(f"{where}: source {src!r} is not a local module of terraform/")
                continue
            child = by_path[target]
            calls[mname] = child
            declared = {v[0]: b for _, v, b in child.of("variable")}
            meta = {"source", "version", "providers", "count", "for_each", "depends_on"}
            for arg in body:
                if arg.startswith("__") or arg in meta:
                    continue
                if arg not in declared:
                    bad.append(f"{where}: passes {arg!r}, which {child.rel} does not declare")
            for vname, vbody in declared.items():
                if "default" not in vbody and vname not in body:
                    bad.append(f"{where}: does not pass required variable {vname!r}")
        # A composition's example tfvars sets every required variable and no unknown one.
        example = os.path.join(mod.path, "terraform.tfvars.example")
        if is_root_module(mod) and os.path.exists(example):
            with open(example, encoding="utf-8") as f:
                values = hcl2.load(f, serialization_options=OPTIONS)
            declared = {v[0]: b for _, v, b in mod.of("variable")}
            rel = os.path.relpath(example, REPO)
            for name in values:
                if not name.startswith("__") and name not in declared:
                    bad.append(f"{rel}: sets {name!r}, which is not a variable of {mod.rel}")
            for name, vbody in declared.items():
                if "default" not in vbody and name not in values:
                    bad.append(f"{rel}: does not set required variable {name!r}")
        text = json.dumps([b for _, _, b in mod.of("output") + mod.of("module") + mod.of("locals") + mod.of("resource")])
        for mname, out in sorted(set(ref.findall(text))):
            if mname not in calls:
                if mod.of("module"):
                    bad.append(f"{mod.rel}: references module.{mname}.{out} but calls no module {mname!r}")
                continue
            outputs = {o[0] for _, o, _ in calls[mname].of("output")}
            if out not in outputs:
                bad.append(f"{mod.rel}: references module.{mname}.{out}, not an output of {calls[mname].rel}")
    return bad


def check_helm_outputs(compositions):
    bad = []
    if not compositions:
        return ["no composition (root module with a provider) found"]
    for mod in compositions:
        outputs = {o[0]: b for _, o, b in mod.of("output")}
        for name, feeds in REQUIRED_OUTPUTS.items():
            if name not in outputs:
                bad.append(f"{mod.rel}: missing output {name!r} (feeds {feeds})")
            elif not str(outputs[name].get("description", "")).strip():
                bad.append(f"{mod.rel}: output {name!r} has no description")
        hv = outputs.get("operator_helm_values", {}).get("value")
        hv = hv[0] if isinstance(hv, list) and hv else hv
        ok = (
            isinstance(hv, dict)
            and isinstance(hv.get("image"), dict) and "repository" in hv["image"]
            and isinstance(hv.get("serviceAccount"), dict)
            and "eks.amazonaws.com/role-arn" in json.dumps(hv["serviceAccount"].get("annotations", {}))
            and isinstance(hv.get("operator"), dict) and "clusterId" in hv["operator"]
        )
        if not ok:
            bad.append(f"{mod.rel}: output operator_helm_values must hold image.repository, serviceAccount.annotations.\"eks.amazonaws.com/role-arn\" and operator.clusterId")
    return bad


def check_ecr(mods):
    bad = []
    repos = []
    for mod in mods:
        lifecycle_targets = json.dumps([b for _, l, b in mod.of("resource") if l[0] == "aws_ecr_lifecycle_policy"])
        for fname, (rtype, rname), body in mod.of("resource"):
            if rtype != "aws_ecr_repository":
                continue
            repos.append((mod, rname, body))
            where = f"{os.path.relpath(fname, REPO)}: aws_ecr_repository.{rname}"
            mutability = body.get("image_tag_mutability")
            filters = block_items(body, "image_tag_mutability_exclusion_filter")
            if mutability == "IMMUTABLE_WITH_EXCLUSION":
                # One channel tag may move, and only that literal tag: the one
                # a MovieApp follows by default (operator/src/crd.rs DEFAULT_TAG).
                declared = {v[0]: b for _, v, b in mod.of("variable")}
                values = []
                for f in filters:
                    value = f.get("filter", "")
                    m = re.fullmatch(r"\$\{var\.([A-Za-z0-9_]+)\}", str(value))
                    if m:
                        value = declared.get(m.group(1), {}).get("default")
                    values.append(value)
                default_tag = operator_default_tag()
                if len(filters) != 1 or any(f.get("filter_type") != "WILDCARD" for f in filters):
                    bad.append(f"{where}: IMMUTABLE_WITH_EXCLUSION needs exactly one WILDCARD exclusion filter (the channel tag)")
                elif not isinstance(values[0], str) or "*" in values[0] or "?" in values[0]:
                    bad.append(f"{where}: the exclusion filter must be one literal tag, not a pattern ({values[0]!r}): every version tag stays immutable")
                elif values[0] != default_tag:
                    bad.append(f"{where}: the mutable channel tag {values[0]!r} is not the operator's default tag {default_tag!r} (operator/src/crd.rs DEFAULT_TAG)")
            elif mutability != "IMMUTABLE":
                bad.append(f"{where}: image_tag_mutability is not \"IMMUTABLE\" or \"IMMUTABLE_WITH_EXCLUSION\" with one channel tag")
            scans = block_items(body, "image_scanning_configuration")
            if not scans or scans[0].get("scan_on_push") is not True:
                bad.append(f"{where}: image_scanning_configuration.scan_on_push is not true")
            enc = block_items(body, "encryption_configuration")
            if not enc or enc[0].get("encryption_type") != "KMS":
                bad.append(f"{where}: not encrypted with KMS")
            if f"aws_ecr_repository.{rname}" not in lifecycle_targets:
                bad.append(f"{where}: no aws_ecr_lifecycle_policy")
            # The registry module names its repositories through a variable.
            if body.get("name", "").startswith("${"):
                declared = {v[0]: b for _, v, b in mod.of("variable")}
                names = set(literal_strings(declared.get("repositories", {}).get("default")))
                missing = REQUIRED_ECR_REPOSITORIES - names
                if missing:
                    bad.append(f"{where}: default repositories lack {sorted(missing)}")
    if not repos:
        bad.append("no aws_ecr_repository found")
    return bad


def _text(v):
    return v if isinstance(v, str) else json.dumps(v)


def _locals(mod):
    out = {}
    for _, _, body in mod.of("locals"):
        for k, v in body.items():
            if not k.startswith("__"):
                out[k] = v
    return out


def _expand(mod, text, depth=4):
    """The text of an expression with the locals it names appended (and theirs)."""
    locs = _locals(mod)
    seen, todo, out = set(), [text], [text]
    for _ in range(depth):
        nxt = []
        for t in todo:
            for name in re.findall(r"local\.([A-Za-z0-9_]+)", t):
                if name in locs and name not in seen:
                    seen.add(name)
                    out.append(_text(locs[name]))
                    nxt.append(_text(locs[name]))
        todo = nxt
    return "\n".join(out)


def operator_default_tag():
    """DEFAULT_TAG of operator/src/crd.rs: the tag a MovieApp follows by default."""
    path = os.path.join(REPO, "operator", "src", "crd.rs")
    try:
        with open(path, encoding="utf-8") as f:
            m = re.search(r'pub const DEFAULT_TAG: &str = "([^"]+)";', f.read())
    except OSError:
        return None
    return m.group(1) if m else None


# The iam module's policies are JSON templates written by `make
# iam-policies` from the declared AWS calls (model/src/iam.rs).
POLICY_TEMPLATES = {"operator": "operator.json.tftpl", "api_worker": "worker.json.tftpl"}


def _template_statements(mod, name):
    """Statements of a module's policy template, as {sid, actions, resources}."""
    path = os.path.join(mod.path, "policies", POLICY_TEMPLATES.get(name, "-"))
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"\$\{jsonencode\((\w+)\)\}", r'["${\1}"]', text)
    text = re.sub(r"%\{[^}]*\}", "", text)
    doc = json.loads(text)
    return [{"sid": st.get("Sid"), "actions": as_list(st.get("Action")),
             "resources": as_list(st.get("Resource"))} for st in doc["Statement"]]


def _policy_actions(mod, name):
    actions, statements = set(), []
    for _, labels, body in mod.of("data"):
        if labels == ["aws_iam_policy_document", name]:
            for st in block_items(body, "statement"):
                statements.append(st)
                actions.update(literal_strings(st.get("actions")))
    for st in _template_statements(mod, name) or []:
        statements.append(st)
        actions.update(literal_strings(st.get("actions")))
    return actions, statements


def check_operator_iam(mods):
    bad = []
    iam = [m for m in mods if any(l == ["aws_iam_policy_document", "operator"] for _, l, _ in m.of("data"))
           or _template_statements(m, "operator") is not None]
    if not iam:
        return ["no data.aws_iam_policy_document.operator found"]
    for mod in iam:
        got, statements = _policy_actions(mod, "operator")
        if got - OPERATOR_ACTIONS:
            bad.append(f"{mod.rel}: operator policy grants actions the operator does not call: {sorted(got - OPERATOR_ACTIONS)}")
        if OPERATOR_ACTIONS - got:
            bad.append(f"{mod.rel}: operator policy lacks actions the operator calls: {sorted(OPERATOR_ACTIONS - got)}")
        for st in statements:
            # IAM cannot scope these to a resource (no resource type in the
            # Service Authorization Reference); the operator calls them only on
            # subscriptions it listed on its own topics.
            # tag:GetResources neither: it lists only what the caller may see.
            unscoped_ok = set(literal_strings(st.get("actions"))) <= SNS_SUBSCRIPTION_ACTIONS | {"tag:GetResources"}
            for r in literal_strings(st.get("resources")):
                if r == "*" and not unscoped_ok:
                    bad.append(f"{mod.rel}: operator statement {st.get('sid')} is not scoped to the movieapp- names ({r})")
            if not st.get("resources"):
                bad.append(f"{mod.rel}: operator statement {st.get('sid')} has no resources")
        got, statements = _policy_actions(mod, "api_worker")
        if not got:
            bad.append(f"{mod.rel}: no api_worker policy")
        if got - API_WORKER_ACTIONS:
            bad.append(f"{mod.rel}: api-worker policy grants non data-plane actions: {sorted(got - API_WORKER_ACTIONS)}")
        if API_WORKER_ACTIONS - got:
            bad.append(f"{mod.rel}: api-worker policy lacks actions the api-worker calls: {sorted(API_WORKER_ACTIONS - got)}")
        local_values = _locals(mod)
        for st in statements:
            if literal_strings(st.get("resources")) == ["*"]:
                bad.append(f"{mod.rel}: api-worker statement {st.get('sid')} allows every resource")
            # Publishing to another tenant's topic forges its jobs and
            # notifications: only the MovieApp's own topic, by its exact ARN
            # (SNS tag conditions are not relied upon).
            if "sns:Publish" in literal_strings(st.get("actions")):
                resources = _text(st.get("resources"))
                for name in re.findall(r"local\.(\w+)", resources):
                    resources += _text(local_values.get(name, ""))
                if "*" in resources:
                    bad.append(f"{mod.rel}: api-worker statement {st.get('sid')} lets sns:Publish reach other topics than the MovieApp's own: {_text(st.get('resources'))}")
        # IRSA trust must pin both the ServiceAccount (sub) and the audience.
        for _, labels, body in mod.of("data"):
            if labels == ["aws_iam_policy_document", "irsa_trust"]:
                conds = json.dumps(block_items(block_items(body, "statement")[0], "condition"))
                if ":sub" not in conds or ":aud" not in conds:
                    bad.append(f"{mod.rel}: IRSA trust policy must condition on :sub and :aud")
    return bad


# The operator's writes that IAM itself must confine to what this cluster's
# operator owns (docs/iam.md "Ownership in IAM"): changes and deletes and
# untagging only on a resource tagged with its managed-by and cluster id;
# tags only with its keys, never moving managed-by or the cluster elsewhere,
# and on a resource no other cluster's id marks; creates only with both.
OWNED_WRITES = {
    "dynamodb:UpdateTable", "dynamodb:DeleteTable", "dynamodb:UpdateContinuousBackups",
    "dynamodb:UpdateTimeToLive", "sqs:SetQueueAttributes", "sqs:DeleteQueue",
    "sns:DeleteTopic", "sns:Subscribe",
    "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteRolePolicy",
    "iam:DeleteRole", "iam:PutRolePermissionsBoundary",
}
UNTAG_ACTIONS = {"dynamodb:UntagResource", "sqs:UntagQueue", "sns:UntagResource", "iam:UntagRole"}
TAG_ACTIONS = {"dynamodb:TagResource", "sqs:TagQueue", "sns:TagResource", "iam:TagRole"}
CREATE_ACTIONS = {"dynamodb:CreateTable", "sqs:CreateQueue", "sns:CreateTopic", "iam:CreateRole"}
MANAGED_BY_TAG, CLUSTER_TAG = "app.kubernetes.io/managed-by", "movieapp.io/cluster"
OWNERSHIP_TAGS = {MANAGED_BY_TAG, CLUSTER_TAG, "movieapp.io/uid", "movieapp.io/namespace", "movieapp.io/name"}


def _operator_statements_with_conditions(mod):
    """The operator policy's statements, each as {sid, actions, conditions}
    with conditions as {operator: {key: [values]}}, from a policy template or
    an aws_iam_policy_document."""
    out = []
    for _, labels, body in mod.of("data"):
        if labels == ["aws_iam_policy_document", "operator"]:
            for st in block_items(body, "statement"):
                conds = {}
                for c in block_items(st, "condition"):
                    conds.setdefault(str(c.get("test")), {})[str(c.get("variable"))] = [str(v) for v in as_list(c.get("values"))]
                out.append({"sid": st.get("sid"), "actions": literal_strings(st.get("actions")), "conditions": conds})
    path = os.path.join(mod.path, "policies", POLICY_TEMPLATES["operator"])
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"\$\{jsonencode\((\w+)\)\}", r'["${\1}"]', text)
        text = re.sub(r"%\{[^}]*\}", "", text)
        for st in json.loads(text)["Statement"]:
            conds = {op: {k: [str(v) for v in as_list(vals)] for k, vals in keys.items()}
                     for op, keys in (st.get("Condition") or {}).items()}
            out.append({"sid": st.get("Sid"), "actions": as_list(st.get("Action")), "conditions": conds})
    return out


def check_operator_iam_ownership(mods, compositions):
    bad = []
    iam = [m for m in mods if any(l == ["aws_iam_policy_document", "operator"] for _, l, _ in m.of("data"))
           or _template_statements(m, "operator") is not None]
    if not iam:
        return ["no operator policy found"]
    for mod in iam:
        for st in _operator_statements_with_conditions(mod):
            where = f"{mod.rel}: operator statement {st['sid']}"
            granted = {g for a in st["actions"] for g in OWNED_WRITES | UNTAG_ACTIONS | TAG_ACTIONS | CREATE_ACTIONS
                       if fnmatch.fnmatchcase(g.lower(), a.lower())}
            if not granted:
                continue
            conds = st["conditions"]

            def values(op, key):
                return conds.get(op, {}).get(key)

            def this_cluster(vals):
                # A reference to the cluster id (template or variable), not a literal.
                return bool(vals) and all("cluster" in v and ("${" in v or "var." in v) for v in vals)

            def pinned(kind, tag, if_exists=False):
                ops = ["StringEquals"] + (["StringEqualsIfExists"] if if_exists else [])
                vals = next((values(op, f"aws:{kind}/{tag}") for op in ops if values(op, f"aws:{kind}/{tag}")), None)
                if tag == CLUSTER_TAG:
                    return this_cluster(vals)
                return vals == ["movieapp-operator"]

            resource_ours = pinned("ResourceTag", MANAGED_BY_TAG) and pinned("ResourceTag", CLUSTER_TAG)
            claims = pinned("RequestTag", MANAGED_BY_TAG) and pinned("RequestTag", CLUSTER_TAG)
            keys = values("ForAllValues:StringEquals", "aws:TagKeys")
            keys_bounded = keys is not None and values("Null", "aws:TagKeys") == ["false"]
            if granted & OWNED_WRITES and not resource_ours:
                bad.append(f"{where} changes or deletes {sorted(granted & OWNED_WRITES)} without aws:ResourceTag {MANAGED_BY_TAG} and {CLUSTER_TAG} = the cluster id")
            if granted & UNTAG_ACTIONS and not (resource_ours and keys_bounded and not set(keys) & OWNERSHIP_TAGS):
                bad.append(f"{where} untags without aws:ResourceTag ownership, or may remove ownership tags (aws:TagKeys {keys})")
            if granted & TAG_ACTIONS:
                request_bounded = pinned("RequestTag", MANAGED_BY_TAG, True) and pinned("RequestTag", CLUSTER_TAG, True)
                resource_bounded = pinned("ResourceTag", CLUSTER_TAG, True)
                if not (keys_bounded and request_bounded and resource_bounded):
                    bad.append(f"{where} tags without bounding aws:TagKeys, aws:RequestTag ({MANAGED_BY_TAG}, {CLUSTER_TAG}) and aws:ResourceTag/{CLUSTER_TAG} to the cluster id")
            if granted & CREATE_ACTIONS and not claims:
                bad.append(f"{where} creates without aws:RequestTag {MANAGED_BY_TAG} and {CLUSTER_TAG} = the cluster id")
        # The template's ${cluster} comes from the module's caller.
        path = os.path.join(mod.path, "policies", POLICY_TEMPLATES["operator"])
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                uses = "${cluster}" in f.read()
            passed = re.search(r"\bcluster\b", _text(_locals(mod).get("operator_policy_json", "")))
            if uses and not passed:
                bad.append(f"{mod.rel}: the operator policy template uses ${{cluster}} but templatefile is not given cluster")
    # The composition gives the iam module the cluster id the operator runs with.
    for comp in compositions:
        outputs = {o[0]: b for _, o, b in comp.of("output")}
        hv = outputs.get("operator_helm_values", {}).get("value")
        hv = hv[0] if isinstance(hv, list) and hv else hv
        helm_cluster = hv.get("operator", {}).get("clusterId") if isinstance(hv, dict) else None
        for _, (mname,), body in comp.of("module"):
            if not str(body.get("source", "")).rstrip("/").endswith("modules/iam"):
                continue
            if body.get("cluster_id") is None or body.get("cluster_id") != helm_cluster:
                bad.append(f"{comp.rel}: module \"{mname}\" must set cluster_id to operator_helm_values' operator.clusterId ({helm_cluster!r}), not {body.get('cluster_id')!r}")
    return bad


def _operator_statements_for_roles(mod):
    """The operator's statements as {sid, actions, resources, conditions}:
    from its policy template (conditions as JSON) and from an HCL
    aws_iam_policy_document (condition blocks)."""
    out = []
    path = os.path.join(mod.path, "policies", POLICY_TEMPLATES["operator"])
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"\$\{jsonencode\((\w+)\)\}", r'["${\1}"]', text)
        text = re.sub(r"%\{[^}]*\}", "", text)
        for st in json.loads(text)["Statement"]:
            out.append({"sid": st.get("Sid"), "actions": as_list(st.get("Action")),
                        "resources": as_list(st.get("Resource")),
                        "conditions": json.dumps(st.get("Condition", {}))})
    for _, labels, body in mod.of("data"):
        if labels == ["aws_iam_policy_document", "operator"]:
            for st in block_items(body, "statement"):
                out.append({"sid": st.get("sid"), "actions": literal_strings(st.get("actions")),
                            "resources": literal_strings(st.get("resources")),
                            "conditions": json.dumps(block_items(st, "condition"), default=str)})
    return out


def check_worker_roles_iam(mods):
    """The operator makes the worker roles: IAM actions only on roles under
    the prefix, CreateRole and PutRolePermissionsBoundary only with the
    iam:PermissionsBoundary condition, and never iam:PassRole."""
    bad = []
    for mod in mods:
        for st in _operator_statements_for_roles(mod):
            actions = set(st["actions"])
            sid = st["sid"]
            if actions & {"iam:PassRole", "iam:*", "*"}:
                bad.append(f"{mod.rel}: operator statement {sid} grants iam:PassRole (or a wildcard covering it)")
            iam_actions = {a for a in actions if a.startswith("iam:")}
            if not iam_actions:
                continue
            for r in st["resources"]:
                if ":role/" not in r or not r.endswith("*") or "${prefix}" not in r and "movieapp-" not in r:
                    bad.append(f"{mod.rel}: operator statement {sid} grants IAM actions beyond the roles under the prefix ({r})")
            if iam_actions & BOUNDED_IAM_ACTIONS and "iam:PermissionsBoundary" not in st["conditions"]:
                bad.append(f"{mod.rel}: operator statement {sid} allows {sorted(iam_actions & BOUNDED_IAM_ACTIONS)} without the iam:PermissionsBoundary condition")
    return bad


def check_side_tasks(mods):
    for mod in mods:
        for _, (vname,), body in mod.of("variable"):
            if vname != "side_tasks":
                continue
            default = body.get("default")
            default = default[0] if isinstance(default, list) and default else default
            task = (default or {}).get("sync-popular") if isinstance(default, dict) else None
            if not task or literal_strings(task.get("command")) != ["sync-popular"]:
                return [f"{mod.rel}: side_tasks default must run sync-popular"]
            defs = json.dumps([b for _, l, b in mod.of("resource") if l[0] == "aws_ecs_task_definition"])
            if 'entryPoint = [\\"api-worker\\"]' not in defs:
                return [f"{mod.rel}: task definitions must use the api-worker binary as entry point"]
            if "aws_scheduler_schedule" not in {l[0] for _, l, _ in mod.of("resource")}:
                return [f"{mod.rel}: no EventBridge Scheduler schedule"]
            return []
    return ["no side_tasks variable (ECS scheduled sync-popular) found"]


REQUIRED_INTERFACE_ENDPOINTS = {"sqs", "sns", "ecr.api", "ecr.dkr", "sts", "logs"}
REQUIRED_GATEWAY_ENDPOINTS = {"dynamodb", "s3"}


def check_network_endpoints(mods):
    """The pods' AWS traffic stays in the VPC: gateway endpoints for DynamoDB
    (and S3, where ECR keeps image layers) and interface endpoints for the
    other services the pods call."""
    for mod in mods:
        declared = {v[0]: b for _, v, b in mod.of("variable")}
        if "interface_endpoints" not in declared:
            continue
        bad = []
        have = set(literal_strings(declared["interface_endpoints"].get("default")))
        if REQUIRED_INTERFACE_ENDPOINTS - have:
            bad.append(f"{mod.rel}: interface_endpoints default lacks {sorted(REQUIRED_INTERFACE_ENDPOINTS - have)}")
        gateways = set()
        for _, (rtype, _), body in mod.of("resource"):
            if rtype == "aws_vpc_endpoint" and body.get("vpc_endpoint_type") == "Gateway":
                fe = body.get("for_each", "")
                gateways.update(re.findall(r'"([a-z0-9.]+)"', fe if isinstance(fe, str) else json.dumps(fe)))
        if REQUIRED_GATEWAY_ENDPOINTS - gateways:
            bad.append(f"{mod.rel}: no gateway endpoint for {sorted(REQUIRED_GATEWAY_ENDPOINTS - gateways)}")
        return bad
    return ["no network module (variable interface_endpoints) found"]


def check_checkov_skips(mods, checkov_yaml):
    bad = []
    listed = {}
    try:
        with open(checkov_yaml, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return [f"{checkov_yaml}: missing"]
    section = text.split("inline-skips:", 1)
    if len(section) == 2:
        for line in section[1].splitlines():
            m = re.match(r"#\s+(CKV2?_[A-Z0-9_]+):\s*(\S.*)$", line.strip())
            if m:
                listed[m.group(1)] = m.group(2)
            elif line.strip() and not line.strip().startswith("#"):
                break
    used = set()
    for mod in mods:
        for fname, comment in mod.comments:
            m = re.match(r"\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?", comment)
            if not m:
                continue
            used.add(m.group(1))
            where = os.path.relpath(fname, REPO)
            if not (m.group(2) or "").strip():
                bad.append(f"{where}: checkov:skip={m.group(1)} without a reason")
            if m.group(1) not in listed:
                bad.append(f"{where}: checkov:skip={m.group(1)} is not listed under inline-skips in {os.path.relpath(checkov_yaml, REPO)}")
    for ckv in sorted(set(listed) - used):
        bad.append(f"{os.path.relpath(checkov_yaml, REPO)}: inline skip {ckv} is listed but no longer used")
    return bad


# The calls Lambda itself makes with a function's role, beyond the app's own
# data-plane calls: logs, traces, and the network interfaces of a VPC function.
LAMBDA_RUNTIME_ACTIONS = {
    "logs:CreateLogStream", "logs:PutLogEvents",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
    "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
}
LAMBDA_RUNTIMES = {"provided.al2023"}
LAMBDA_ARCHITECTURES = {"x86_64", "arm64"}


def _ref_name(expr, kind):
    """`aws_iam_role.this` out of "${aws_iam_role.this.arn}" (kind = aws_iam_role)."""
    m = re.search(re.escape(kind) + r"\.([A-Za-z0-9_-]+)", expr if isinstance(expr, str) else json.dumps(expr))
    return m.group(1) if m else None


def check_lambda(mods):
    bad = []
    functions = [(mod, f, l, b) for mod in mods for f, l, b in mod.of("resource") if l[0] == "aws_lambda_function"]
    if not functions:
        return ["no aws_lambda_function found (terraform/modules/lambda)"]
    for mod, fname, (_, rname), body in functions:
        where = f"{os.path.relpath(fname, REPO)}: aws_lambda_function.{rname}"
        if body.get("runtime") not in LAMBDA_RUNTIMES:
            bad.append(f"{where}: runtime {body.get('runtime')!r} is not one of {sorted(LAMBDA_RUNTIMES)}")
        arch = literal_strings(body.get("architectures"))
        if len(arch) != 1 or arch[0] not in LAMBDA_ARCHITECTURES:
            bad.append(f"{where}: architectures must state one of {sorted(LAMBDA_ARCHITECTURES)}")
        for attr in ("reserved_concurrent_executions", "kms_key_arn", "source_code_hash"):
            if attr not in body:
                bad.append(f"{where}: no {attr}")
        for block in ("tracing_config", "vpc_config"):
            if not block_items(body, block):
                bad.append(f"{where}: no {block}")
        logging = block_items(body, "logging_config")
        group = _ref_name(logging[0].get("log_group", ""), "aws_cloudwatch_log_group") if logging else None
        groups = {l[1]: b for _, l, b in mod.of("resource") if l[0] == "aws_cloudwatch_log_group"}
        if group not in groups:
            bad.append(f"{where}: logging_config.log_group is not a log group of the module")
        elif "retention_in_days" not in groups[group] or "kms_key_id" not in groups[group]:
            bad.append(f"{where}: its log group needs retention_in_days and kms_key_id")
        role = _ref_name(body.get("role", ""), "aws_iam_role")
        if role is None:
            bad.append(f"{where}: role is not an aws_iam_role of the module")
            continue
        policies = [(l[1], b) for _, l, b in mod.of("resource")
                    if l[0] == "aws_iam_role_policy" and _ref_name(b.get("role", ""), "aws_iam_role") == role]
        attachments = [l[1] for _, l, b in mod.of("resource")
                       if l[0] == "aws_iam_role_policy_attachment" and _ref_name(b.get("role", ""), "aws_iam_role") == role]
        if attachments:
            bad.append(f"{where}: role {role} has managed policies attached ({attachments}); only the data plane and the runtime's calls are allowed")
        data_plane = [p for p, b in policies if "var.data_plane_policy_json" in str(b.get("policy", ""))]
        if not data_plane:
            bad.append(f"{where}: role {role} lacks the api-worker data-plane policy (var.data_plane_policy_json)")
        for pname, pbody in policies:
            doc = _ref_name(pbody.get("policy", ""), "data.aws_iam_policy_document")
            if doc is None:
                continue
            actions, _ = _policy_actions(mod, doc)
            wild = sorted(a for a in actions if "*" in a)
            if wild:
                bad.append(f"{where}: role policy {pname} has wildcard actions {wild}")
            extra = sorted(actions - LAMBDA_RUNTIME_ACTIONS)
            if extra:
                bad.append(f"{where}: role policy {pname} grants more than the Lambda runtime needs: {extra}")
    for mod in mods:
        resources = mod.of("resource")
        if not any(l[0] == "aws_lambda_function" for _, l, _ in resources):
            continue
        mappings = [(f, l, b) for f, l, b in resources if l[0] == "aws_lambda_event_source_mapping"]
        if not mappings:
            bad.append(f"{mod.rel}: no aws_lambda_event_source_mapping for the jobs queue")
        for fname, (_, rname), body in mappings:
            if "ReportBatchItemFailures" not in literal_strings(body.get("function_response_types")):
                bad.append(f"{os.path.relpath(fname, REPO)}: aws_lambda_event_source_mapping.{rname}: no ReportBatchItemFailures (one poison message would fail its batch)")
        for fname, (rtype, rname), body in resources:
            if rtype != "aws_lambda_permission":
                continue
            source = str(body.get("source_arn", ""))
            if "execute-api" not in source or "var.api_id" not in source:
                bad.append(f"{os.path.relpath(fname, REPO)}: aws_lambda_permission.{rname}: source_arn must name the API (execute-api ... var.api_id)")
    # The composition hands the functions the MovieApp's api-worker policy.
    for mod in mods:
        for fname, (mname,), body in mod.of("module"):
            if not str(body.get("source", "")).rstrip("/").endswith("modules/lambda"):
                continue
            if "module.iam.api_worker_policy_json" not in str(body.get("data_plane_policy_json", "")):
                bad.append(f"{os.path.relpath(fname, REPO)}: module \"{mname}\" must pass data_plane_policy_json = module.iam.api_worker_policy_json[...]")
    return bad


# --- first-apply checks: what a real account refuses -------------------------

ZONE_ID = re.compile(r"^[a-z]{2,5}[0-9]+-az[0-9]+$")


def check_zones(mods):
    """Zones by ID (names map to different physical zones per account), and
    only where each service is offered."""
    bad = []
    unsupported = set()
    for mod in mods:
        for fname, (vname,), body in mod.of("variable"):
            where = f"{os.path.relpath(fname, REPO)}: variable \"{vname}\""
            if vname == "availability_zones":
                bad.append(f"{where}: zones pinned by name; pin zone IDs (availability_zone_ids)")
            if vname == "availability_zone_ids":
                for z in literal_strings(body.get("default")):
                    if not ZONE_ID.match(z):
                        bad.append(f"{where}: default {z!r} is not a zone ID")
            if vname == "vpc_link_unsupported_zone_ids":
                unsupported.update(literal_strings(body.get("default")))
        for fname, (rtype, rname), body in mod.of("resource"):
            where = f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}"
            if rtype == "aws_subnet" and "availability_zone_id" not in body:
                bad.append(f"{where}: placed by zone name (availability_zone); use availability_zone_id")
            if rtype == "aws_apigatewayv2_vpc_link":
                if "vpc_link_unsupported_zone_ids" not in _expand(mod, _text(body.get("subnet_ids", ""))):
                    bad.append(f"{where}: subnet_ids are not filtered by the zones that support HTTP API VPC links (vpc_link_unsupported_zone_ids)")
            if rtype == "aws_vpc_endpoint" and body.get("vpc_endpoint_type") == "Interface":
                if "data.aws_vpc_endpoint_service" not in _expand(mod, _text(body.get("subnet_ids", ""))):
                    bad.append(f"{where}: subnet_ids are not limited to the zones where the service is offered (data.aws_vpc_endpoint_service)")
            if rtype in ("aws_eks_node_group", "aws_autoscaling_group"):
                offerings = [b for _, l, b in mod.of("data") if l[0] == "aws_ec2_instance_type_offerings"]
                if not any(b.get("location_type") == "availability-zone-id" and "postcondition" in _text(b) for b in offerings):
                    bad.append(f"{where}: instance types not checked against the zones' offerings (data.aws_ec2_instance_type_offerings by availability-zone-id, with a postcondition)")
        example = os.path.join(mod.path, "terraform.tfvars.example")
        if is_root_module(mod) and os.path.exists(example):
            with open(example, encoding="utf-8") as f:
                values = hcl2.load(f, serialization_options=OPTIONS)
            rel = os.path.relpath(example, REPO)
            for z in literal_strings(values.get("availability_zone_ids")):
                if not ZONE_ID.match(z):
                    bad.append(f"{rel}: availability_zone_ids has {z!r}, not a zone ID")
    for mod in mods:
        example = os.path.join(mod.path, "terraform.tfvars.example")
        zones = []
        for _, (vname,), body in mod.of("variable"):
            if vname == "availability_zone_ids" and is_root_module(mod):
                zones += literal_strings(body.get("default"))
        if is_root_module(mod) and os.path.exists(example):
            with open(example, encoding="utf-8") as f:
                zones += literal_strings(hcl2.load(f, serialization_options=OPTIONS).get("availability_zone_ids"))
        for z in sorted(set(zones) & unsupported):
            bad.append(f"{mod.rel}: example zone {z} has no HTTP API VPC links")
    return bad


def check_ecs_slr(mods):
    bad = []
    for mod in mods:
        for fname, (rtype, rname), body in mod.of("resource"):
            if rtype != "aws_ecs_capacity_provider":
                continue
            deps = _text(body.get("depends_on", ""))
            if "aws_ecs_cluster." not in deps and "aws_iam_service_linked_role." not in deps:
                bad.append(f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}: depends only on the Auto Scaling group; in an account that never used ECS its service-linked role does not exist yet (depends_on the ECS cluster, or create the role)")
    return bad


NODE_ROLE_POLICIES = {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"}


def check_node_role(mods):
    bad = []
    groups = 0
    for mod in mods:
        for fname, (rtype, rname), body in mod.of("resource"):
            if rtype != "aws_eks_node_group":
                continue
            groups += 1
            role = _ref_name(body.get("node_role_arn", ""), "aws_iam_role")
            attached = set()
            for _, (t, _), b in mod.of("resource"):
                if t == "aws_iam_role_policy_attachment" and _ref_name(b.get("role", ""), "aws_iam_role") == role:
                    text = _text(b.get("for_each", "")) + _text(b.get("policy_arn", ""))
                    attached.update(p for p in NODE_ROLE_POLICIES if re.search(r"\b" + re.escape(p) + r"\b", text))
            missing = NODE_ROLE_POLICIES - attached
            if missing:
                bad.append(f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}: node role {role} lacks {sorted(missing)} (the node-group API refuses roles without ReadOnly)")
    if not groups:
        bad.append("no aws_eks_node_group found")
    return bad


def check_schedules(mods):
    bad = []
    found = False
    for mod in mods:
        declared = {v[0]: b for _, v, b in mod.of("variable")}
        for fname, (rtype, rname), body in mod.of("resource"):
            if rtype != "aws_scheduler_schedule":
                continue
            found = True
            where = f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}"
            state = _text(body.get("state", "ENABLED"))
            if "var.schedules_enabled" not in state:
                bad.append(f"{where}: state does not wait for var.schedules_enabled (schedules run on the first apply, before an image or environment exists)")
            if declared.get("schedules_enabled", {}).get("default") is not False:
                bad.append(f"{where}: variable schedules_enabled must default to false")
            pre = _text([b.get("lifecycle") for b in [body]])
            if "precondition" not in pre or "api_worker_image_tag" not in pre or "environment" not in pre:
                bad.append(f"{where}: no precondition that refuses schedules_enabled without an image tag and the environment")
        # A composition must not enable them, nor name an image, by default.
        if is_root_module(mod):
            for vname in ("side_tasks_enabled",):
                if vname in declared and declared[vname].get("default") is not False:
                    bad.append(f"{mod.rel}: variable {vname} must default to false")
            if "api_worker_image_tag" in declared and declared["api_worker_image_tag"].get("default") is not None:
                bad.append(f"{mod.rel}: variable api_worker_image_tag must default to null (no image is pushed before the first apply)")
    if not found:
        bad.append("no aws_scheduler_schedule found")
    return bad


# Resource types whose names are unique in an account (IAM) or an account and
# region, with the attribute that holds the name.
GLOBAL_NAMES = {
    "aws_kms_alias": "name", "aws_ecr_repository": "name",
    "aws_iam_role": "name", "aws_iam_instance_profile": "name",
    "aws_iam_policy": "name", "aws_ecs_cluster": "name",
    "aws_ecs_capacity_provider": "name", "aws_ecs_task_definition": "family",
    "aws_scheduler_schedule_group": "name", "aws_cloudwatch_log_group": "name",
    "aws_lb": "name", "aws_lb_target_group": "name", "aws_eks_cluster": "name",
    "aws_lambda_function": "function_name", "aws_launch_template": "name_prefix",
    "aws_autoscaling_group": "name_prefix", "aws_secretsmanager_secret": "name",
    "aws_sqs_queue": "name", "aws_cloudwatch_event_rule": "name",
    "aws_cloudtrail": "name", "aws_s3_bucket": "bucket_prefix",
}


def check_global_names(mods, by_path):
    bad = []
    for mod in mods:
        for fname, (rtype, rname), body in mod.of("resource"):
            attr = GLOBAL_NAMES.get(rtype)
            if attr is None:
                continue
            where = f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}.{attr}"
            value = body.get(attr)
            if value is None:
                if not (attr == "name_prefix" and "name" not in body):
                    bad.append(f"{where}: no {attr}")
                continue
            text = _text(value)
            if re.search(r"each\.(key|value)", text):
                text += "\n" + _text(body.get("for_each", ""))
            if "var.name" not in _expand(mod, text):
                bad.append(f"{where}: {value!r} does not carry the environment prefix (var.name): a second environment in the same account and region collides")
        # The prefix a composition hands its modules carries the environment.
        if is_root_module(mod):
            for fname, (mname,), body in mod.of("module"):
                child = by_path.get(os.path.normpath(os.path.join(mod.path, body.get("source", ""))))
                if child is None or "name" not in {v[0] for _, v, _ in child.of("variable")}:
                    continue
                if "var.environment" not in _expand(mod, _text(body.get("name", ""))):
                    bad.append(f"{os.path.relpath(fname, REPO)}: module \"{mname}\": name {body.get('name')!r} does not carry var.environment")
    return bad


def check_first_apply(mods):
    bad = []
    for mod in mods:
        dualstack = any(
            "dualstack" in _text(c.get("ip_address_type", ""))
            for _, l, b in mod.of("resource") if l[0] == "aws_apigatewayv2_domain_name"
            for c in block_items(b, "domain_name_configuration")
        )
        for fname, (rtype, rname), body in mod.of("resource"):
            where = f"{os.path.relpath(fname, REPO)}: {rtype}.{rname}"
            if rtype == "aws_route53_record":
                text = _text(body.get("for_each", "")) + _text(body.get("type", ""))
                if "AAAA" in text and (not dualstack or "var.dualstack" not in text):
                    bad.append(f"{where}: an AAAA alias to an IPv4-only domain; publish AAAA only with a dual-stack domain (var.dualstack)")
            if rtype == "aws_lambda_function":
                value = body.get("reserved_concurrent_executions")
                if isinstance(value, (int, float)) and value >= 0:
                    bad.append(f"{where}: reserves {value} concurrent executions; a new account has none to reserve")
        for fname, (vname,), body in mod.of("variable"):
            if "reserved_concurrency" in vname and body.get("default") is not None:
                bad.append(f"{os.path.relpath(fname, REPO)}: variable \"{vname}\" defaults to {body.get('default')}; default to null (a new account's concurrency quota leaves nothing to reserve)")
    return bad


def model_env_name(const):
    """The value of `pub const CONST` in model/src/lib.rs's `env` module."""
    text = open(os.path.join(REPO, "model", "src", "lib.rs")).read()
    env = text[text.index("pub mod env"):]
    m = re.search(r"pub const " + const + r': &str = "([A-Z0-9_]+)";', env)
    return m.group(1) if m else const


def check_client_address(mods):
    bad = []
    trusted, header = model_env_name("TRUSTED_PROXIES"), model_env_name("FORWARDED_HEADER")
    groups = [(mod, f, l, b) for mod in mods for f, l, b in mod.of("resource")
              if l[0] == "aws_lb_target_group" and b.get("target_type") == "ip"]
    if not groups:
        bad.append("no aws_lb_target_group with target_type ip (terraform/modules/edge)")
    for mod, fname, (_, rname), body in groups:
        where = f"{os.path.relpath(fname, REPO)}: aws_lb_target_group.{rname}"
        if str(body.get("preserve_client_ip")).lower() != "false":
            bad.append(f"{where}: preserve_client_ip must be \"false\": the pods' peer is then the load balancer, in the subnets trusted as proxies")
        for check in block_items(body, "health_check"):
            path = str(check.get("path", "")).removeprefix("${").removesuffix("}")
            if check.get("port", "traffic-port") != "traffic-port":
                bad.append(f"{where}: the health check must use the traffic port (the public listener), not {check.get('port')!r}")
            if path.startswith("var."):
                variable = [b for _, (v,), b in mod.of("variable") if v == path[4:]]
                default = variable[0].get("default") if variable else None
                validated = variable and "/healthz" in json.dumps(variable[0].get("validation", ""))
                if default not in ("/readyz", "/healthz") or not validated:
                    bad.append(f"{where}: {path} must default to /readyz or /healthz and refuse other paths")
            elif path not in ("/readyz", "/healthz"):
                bad.append(f"{where}: health check path {path!r} is not the public /readyz or /healthz")
        outputs = {o[0]: b for _, o, b in mod.of("output")}
        value = _text(outputs.get("worker_trusted_proxies", {}).get("value", ""))
        if "cidr_block" not in value or "data.aws_subnet" not in value:
            bad.append(f"{mod.rel}: output worker_trusted_proxies must join the load balancer subnets' cidr_block ({trusted})")
    for mod in mods:
        functions = [b for _, l, b in mod.of("resource") if l[0] == "aws_lambda_function"]
        if not functions or "all_functions" not in _locals(mod):
            continue
        locs = _locals(mod)
        http = locs["all_functions"]
        http = (http[0] if isinstance(http, list) else http).get("http", {})
        environment = _text(http.get("environment", ""))
        last = re.findall(r"local\.([A-Za-z0-9_]+)\)\s*\}?\s*$", environment)
        named = locs.get(last[0], {}) if last else {}
        named = named[0] if isinstance(named, list) and named else named
        if not isinstance(named, dict) or named.get(trusted) != "":
            bad.append(f"{mod.rel}: the http function's environment must end with a local setting {trusted} = \"\" (API Gateway's sourceIp is the client; no proxy is trusted)")
        variable = [b for _, (v,), b in mod.of("variable") if v == "environment"]
        rules = json.dumps(variable[0].get("validation", "")) if variable else ""
        if trusted not in rules or header not in rules:
            bad.append(f"{mod.rel}: variable environment must refuse {trusted} and {header}")
    return bad


# --- AWS change events (module aws-events, operator/src/events.rs) ------------

def consumer_contract():
    """What the operator's events consumer understands (operator/src/events.rs,
    operator/src/naming.rs): the detail-type, the event sources, the request
    parameters it takes names from, and the prefix of every name it owns."""
    def read(*parts):
        with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
            return f.read()
    events, naming = read("operator", "src", "events.rs"), read("operator", "src", "naming.rs")
    detail_type = re.search(r'pub const CLOUDTRAIL_DETAIL_TYPE: &str = "([^"]+)";', events)
    sources = re.search(r"pub const SOURCES: \[&str; \d+\] = \[([^\]]*)\];", events)
    keys = re.search(r"let parameters = &detail\[\"requestParameters\"\];.*?\[(.*?)\]", events, re.S)
    prefix = re.search(r'pub const PREFIX: &str = "([^"]+)";', naming)
    return {
        "detail_type": detail_type.group(1) if detail_type else None,
        "sources": re.findall(r'"([^"]+)"', sources.group(1)) if sources else [],
        "keys": re.findall(r'"([A-Za-z]+)"', keys.group(1)) if keys else [],
        # Names are PREFIX-<namespace>-<name>-... or PREFIX-<hash>-...
        "prefix": prefix.group(1) + "-" if prefix else None,
    }


# The writes that change what the operator manages, one per drift the
# operator repairs (docs/aws-events.md): the rule must match each of them.
EVENT_WRITES = {
    "aws.dynamodb": {"UpdateTable": "tableName", "DeleteTable": "tableName",
                     "UpdateContinuousBackups": "tableName", "UpdateTimeToLive": "tableName",
                     "TagResource": "resourceArn", "UntagResource": "resourceArn"},
    "aws.sqs": {"SetQueueAttributes": "queueUrl", "DeleteQueue": "queueUrl",
                "TagQueue": "queueUrl", "UntagQueue": "queueUrl",
                "AddPermission": "queueUrl", "RemovePermission": "queueUrl"},
    "aws.sns": {"SetTopicAttributes": "topicArn", "DeleteTopic": "topicArn",
                "Subscribe": "topicArn", "Unsubscribe": "subscriptionArn",
                "SetSubscriptionAttributes": "subscriptionArn",
                "TagResource": "resourceArn", "UntagResource": "resourceArn",
                "AddPermission": "topicArn", "RemovePermission": "topicArn"},
}


def _sample_value(source, key, name):
    service = source.split(".")[1]
    if key == "tableName":
        return name
    if key == "queueUrl":
        return f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}"
    if key == "subscriptionArn":
        return f"arn:aws:sns:us-east-1:123456789012:{name}:9f1c1b7e-5d7c-4d2b-a1f0-3c3a3c0c1e11"
    if service == "dynamodb":
        return f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"
    return f"arn:aws:{service}:us-east-1:123456789012:{name}"


def sample_event(source, event_name, key, name):
    """A CloudTrail management event as EventBridge delivers it."""
    return {
        "source": source, "detail-type": "AWS API Call via CloudTrail",
        "detail": {"eventSource": source.split(".")[1] + ".amazonaws.com", "eventName": event_name,
                   "requestParameters": {key: _sample_value(source, key, name)}},
    }


def _value_matches(rule, value):
    if isinstance(rule, dict):
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "wildcard" in rule:
            pattern = "^" + ".*".join(re.escape(p) for p in rule["wildcard"].split("*")) + "$"
            return isinstance(value, str) and re.match(pattern, value) is not None
        if "anything-but" in rule:
            return value not in as_list(rule["anything-but"])
        if "exists" in rule:
            return (value is not None) == rule["exists"]
        return False
    return value == rule


def pattern_matches(pattern, event):
    """EventBridge's matching, for the filters the rule may use: value
    lists (any one), prefix, wildcard, anything-but, exists, and $or."""
    if not isinstance(pattern, dict) or not isinstance(event, dict):
        return False
    for key, rule in pattern.items():
        if key == "$or":
            if not any(pattern_matches(alt, event) for alt in rule):
                return False
        elif isinstance(rule, dict):
            if not pattern_matches(rule, event.get(key)):
                return False
        else:
            value = event.get(key) if isinstance(event, dict) else None
            values = value if isinstance(value, list) else [value]
            if not any(_value_matches(r, v) for r in as_list(rule) for v in values):
                return False
    return True


# A name a MovieApp gives explicitly (spec.queue.name, ...), outside the prefix.
EXTERNAL_NAME = "legacy-users"


def render_pattern(template, prefix, names):
    """What templatefile makes of the pattern: %{ for n in names }...%{ endfor }
    repeated per name, then ${prefix}."""
    def loop(m):
        return "".join(m.group(2).replace("${" + m.group(1) + "}", n) for n in names)
    text = re.sub(r"%\{ for (\w+) in names ~?\}(.*?)%\{ endfor ~?\}", loop, template, flags=re.S)
    return text.replace("${prefix}", prefix)


def _event_rules(mods):
    """(module, file, name, pattern or error) of every EventBridge rule whose
    pattern is a template file of its module."""
    out = []
    contract = consumer_contract()
    for mod in mods:
        for fname, (rtype, rname), body in mod.of("resource"):
            if rtype != "aws_cloudwatch_event_rule":
                continue
            text = _text(body.get("event_pattern", ""))
            m = re.search(r'templatefile\("\$\{path\.module\}/([^"]+)"', text)
            if not m:
                out.append((mod, fname, rname, "event_pattern is not templatefile(\"${path.module}/...\") (nothing to check)"))
                continue
            try:
                with open(os.path.join(mod.path, m.group(1)), encoding="utf-8") as f:
                    template = f.read()
                rendered = {tuple(names): json.loads(render_pattern(template, contract["prefix"] or "movieapp-", names))
                            for names in ([], [EXTERNAL_NAME])}
                out.append((mod, fname, rname, rendered))
            except (OSError, ValueError) as e:
                out.append((mod, fname, rname, f"event pattern {m.group(1)}: {e}"))
    return out


def check_events_rule(mods):
    """The rule delivers every write the consumer understands on the
    operator's names, and nothing under another prefix."""
    bad = []
    contract = consumer_contract()
    if not (contract["detail_type"] and contract["sources"] and contract["keys"] and contract["prefix"]):
        return [f"operator/src/events.rs or naming.rs no longer says what the consumer reads: {contract}"]
    rules = _event_rules(mods)
    if not rules:
        return ["no aws_cloudwatch_event_rule for the AWS change events"]
    covered_keys = {key for writes in EVENT_WRITES.values() for key in writes.values()}
    if set(contract["keys"]) - covered_keys:
        bad.append(f"the consumer reads request parameters no write of EVENT_WRITES uses: {sorted(set(contract['keys']) - covered_keys)}")
    if set(contract["sources"]) != set(EVENT_WRITES):
        bad.append(f"the consumer's sources {contract['sources']} are not those of EVENT_WRITES {sorted(EVENT_WRITES)}")
    for mod, fname, rname, pattern in rules:
        at = f"{os.path.relpath(fname, REPO)}: aws_cloudwatch_event_rule.{rname}"
        if isinstance(pattern, str):
            bad.append(f"{at}: {pattern}")
            continue
        plain, with_external = pattern[()], pattern[(EXTERNAL_NAME,)]
        pattern = plain
        for var in [b for _, (v,), b in mod.of("variable") if v == "resource_prefix"]:
            if var.get("default") != contract["prefix"]:
                bad.append(f"{at}: variable resource_prefix defaults to {var.get('default')!r}, the operator names {contract['prefix']!r}...")
        if as_list(pattern.get("detail-type")) != [contract["detail_type"]]:
            bad.append(f"{at}: detail-type is not [{contract['detail_type']!r}]")
        owned, foreign = contract["prefix"] + "ns-shop-1a2b3c4d-jobs", "billing-jobs"
        for source in contract["sources"]:
            for event_name, key in EVENT_WRITES.get(source, {}).items():
                for pat, name, names in ((plain, owned, "no external_names"), (with_external, owned, f"external_names [{EXTERNAL_NAME}]"),
                                         (with_external, EXTERNAL_NAME, f"external_names [{EXTERNAL_NAME}]")):
                    if not pattern_matches(pat, sample_event(source, event_name, key, name)):
                        bad.append(f"{at}: with {names}, does not match {source} {event_name} on {key} {name}")
                for pat, name in ((plain, foreign), (plain, EXTERNAL_NAME), (with_external, foreign)):
                    if pattern_matches(pat, sample_event(source, event_name, key, name)):
                        bad.append(f"{at}: matches {source} {event_name} on {key} {name}, outside the prefix and the external names")
        for name in as_list(pattern.get("detail", {}).get("eventName")):
            if isinstance(name, str) and re.match(r"(Describe|Get|List)", name):
                bad.append(f"{at}: matches the read {name}: the rule is for writes")
        if pattern_matches(pattern, sample_event("aws.s3", "PutBucketPolicy", "bucketName", owned)):
            bad.append(f"{at}: matches another service (aws.s3)")
    return bad


def _queues(mods):
    return [(mod, fname, rname, body) for mod in mods for fname, (rtype, rname), body in mod.of("resource")
            if rtype == "aws_sqs_queue"]


def _rule_target_queues(mods):
    """The queues an EventBridge rule delivers to (target arn or dead letter)."""
    out = []
    for mod in mods:
        rules = {rname for _, (rtype, rname), _ in mod.of("resource") if rtype == "aws_cloudwatch_event_rule"}
        for fname, (rtype, rname), body in mod.of("resource"):
            if rtype != "aws_cloudwatch_event_target":
                continue
            for ref in [body.get("arn")] + [d.get("arn") for d in block_items(body, "dead_letter_config")]:
                m = re.search(r"aws_sqs_queue\.(\w+)\.arn", _text(ref or ""))
                if m:
                    out.append((mod, fname, m.group(1), rules))
    return out


def check_events_queue_policy(mods):
    """Only the rule sends to its queues: every queue an EventBridge target
    names has a policy whose every statement lets events.amazonaws.com send
    on condition aws:SourceArn = that rule; no queue policy anywhere has a
    wildcard principal."""
    bad = []
    targets = _rule_target_queues(mods)
    if not targets:
        bad.append("no EventBridge target delivers to an SQS queue")
    for mod, fname, queue, rules in targets:
        at = f"{mod.rel}: aws_sqs_queue.{queue}"
        # queue_url names the queue, or each.value of a for_each that does.
        policies = [b for _, (t, _n), b in mod.of("resource")
                    if t == "aws_sqs_queue_policy"
                    and (re.search(rf"aws_sqs_queue\.{queue}\.(id|url)", _text(b.get("queue_url", "")))
                         or ("each.value" in _text(b.get("queue_url", ""))
                             and re.search(rf"aws_sqs_queue\.{queue}\b", _expand(mod, _text(b.get("for_each", ""))))))]
        if not policies:
            bad.append(f"{at}: no aws_sqs_queue_policy: EventBridge cannot send, or anyone the account allows can")
            continue
        for policy in policies:
            doc = re.search(r"data\.aws_iam_policy_document\.(\w+)(?:\[each\.key\])?\.json", _text(policy.get("policy", "")))
            docs = [b for _, labels, b in mod.of("data") if doc and labels == ["aws_iam_policy_document", doc.group(1)]]
            if not docs:
                bad.append(f"{at}: its policy is not a data.aws_iam_policy_document (cannot check it)")
                continue
            for st in block_items(docs[0], "statement"):
                principals = block_items(st, "principals")
                ids = [i for p in principals for i in literal_strings(p.get("identifiers"))]
                conds = [c for c in block_items(st, "condition") if c.get("variable") == "aws:SourceArn"
                         and c.get("test") in ("ArnEquals", "StringEquals")]
                arns = " ".join(_text(v) for c in conds for v in as_list(c.get("values")))
                if ids != ["events.amazonaws.com"] or [p.get("type") for p in principals] != ["Service"]:
                    bad.append(f"{at}: statement {st.get('sid')} lets {ids} send, not only EventBridge")
                if not any(re.search(rf"aws_cloudwatch_event_rule\.{r}\.arn", arns) for r in rules):
                    bad.append(f"{at}: statement {st.get('sid')} has no aws:SourceArn condition naming the rule: any EventBridge rule of any account could send")
    for mod in mods:
        for _, labels, body in mod.of("data"):
            if labels[0] != "aws_iam_policy_document":
                continue
            for st in block_items(body, "statement"):
                if st.get("effect", "Allow") != "Allow":
                    continue
                for p in block_items(st, "principals"):
                    if "*" in literal_strings(p.get("identifiers")):
                        bad.append(f"{mod.rel}: data.aws_iam_policy_document.{labels[1]}: statement {st.get('sid')} allows principal \"*\"")
    return bad


def check_events_dlq(mods):
    """The events queue redrives to a dead-letter queue (what the operator
    cannot read ends there), and EventBridge's target has one too."""
    bad = []
    targets = _rule_target_queues(mods)
    if not targets:
        bad.append("no EventBridge target delivers to an SQS queue")
    for mod in mods:
        queues = {rname: body for _, (rtype, rname), body in mod.of("resource") if rtype == "aws_sqs_queue"}
        for fname, (rtype, rname), body in mod.of("resource"):
            if rtype != "aws_cloudwatch_event_target":
                continue
            at = f"{os.path.relpath(fname, REPO)}: aws_cloudwatch_event_target.{rname}"
            m = re.search(r"aws_sqs_queue\.(\w+)\.arn", _text(body.get("arn", "")))
            if not m:
                continue
            queue = queues.get(m.group(1), {})
            redrive = _text(queue.get("redrive_policy", ""))
            dlq = re.search(r"deadLetterTargetArn\W+aws_sqs_queue\.(\w+)\.arn", redrive)
            if not dlq or dlq.group(1) == m.group(1) or dlq.group(1) not in queues or "maxReceiveCount" not in redrive:
                bad.append(f"{at}: its queue aws_sqs_queue.{m.group(1)} has no redrive_policy to another queue with a maxReceiveCount")
            if not block_items(body, "dead_letter_config"):
                bad.append(f"{at}: no dead_letter_config: events EventBridge cannot deliver are lost")
    return bad


def check_events_encryption(mods):
    """Every SQS queue is encrypted at rest (SSE-SQS or KMS)."""
    bad = []
    queues = _queues(mods)
    for mod, fname, rname, body in queues:
        if body.get("sqs_managed_sse_enabled") is not True and not body.get("kms_master_key_id"):
            bad.append(f"{os.path.relpath(fname, REPO)}: aws_sqs_queue.{rname} is not encrypted (sqs_managed_sse_enabled = true or kms_master_key_id)")
    if not queues:
        bad.append("no aws_sqs_queue")
    return bad


def check_events_trail(mods):
    """EventBridge receives "AWS API Call via CloudTrail" events only while a
    trail logs in the region: the module with the rule makes one (unless
    told the account has one) that logs and records write management events."""
    bad = []
    rule_mods = [mod for mod in mods if any(t == "aws_cloudwatch_event_rule" for _, (t, _n), _ in mod.of("resource"))]
    if not rule_mods:
        return ["no aws_cloudwatch_event_rule for the AWS change events"]
    for mod in rule_mods:
        trails = [(fname, rname, body) for fname, (rtype, rname), body in mod.of("resource") if rtype == "aws_cloudtrail"]
        if not trails:
            bad.append(f"{mod.rel}: no aws_cloudtrail: without a trail logging in the region EventBridge gets no CloudTrail events")
        for fname, rname, body in trails:
            at = f"{os.path.relpath(fname, REPO)}: aws_cloudtrail.{rname}"
            if body.get("enable_logging", True) is not True:
                bad.append(f"{at}: enable_logging is not true: a trail that does not log feeds EventBridge nothing")
            selectors = block_items(body, "event_selector")
            if block_items(body, "advanced_event_selector"):
                bad.append(f"{at}: advanced_event_selector (not checked here; use event_selector)")
            elif selectors and not any(sel.get("include_management_events", True) is True
                                       and sel.get("read_write_type", "All") in ("All", "WriteOnly") for sel in selectors):
                bad.append(f"{at}: no event_selector records write management events (include_management_events, read_write_type WriteOnly or All)")
    return bad


CHECKS = ["tags", "iam-wildcard", "variables", "wiring", "helm-outputs", "ecr",
          "operator-iam", "operator-iam-ownership", "worker-roles-iam", "side-tasks", "network-endpoints", "checkov-skips",
          "lambda", "zones", "ecs-slr", "node-role", "schedules", "global-names",
          "first-apply", "client-address", "events-rule", "events-queue-policy",
          "events-dlq", "events-encryption", "events-trail"]


def run(root, checkov_yaml):
    mods = [load_module(d) for d in module_dirs(root)]
    by_path = {m.path: m for m in mods}
    compositions = [m for m in mods if is_root_module(m)]
    rep = Report()
    rep.check("tags", check_tags(mods))
    rep.check("iam-wildcard", check_iam_wildcard(mods))
    rep.check("variables", check_variables(mods))
    rep.check("wiring", check_wiring(mods, by_path))
    rep.check("helm-outputs", check_helm_outputs(compositions))
    rep.check("ecr", check_ecr(mods))
    rep.check("operator-iam", check_operator_iam(mods))
    rep.check("operator-iam-ownership", check_operator_iam_ownership(mods, compositions))
    rep.check("worker-roles-iam", check_worker_roles_iam(mods))
    rep.check("side-tasks", check_side_tasks(mods))
    rep.check("network-endpoints", check_network_endpoints(mods))
    rep.check("checkov-skips", check_checkov_skips(mods, checkov_yaml))
    rep.check("lambda", check_lambda(mods))
    rep.check("zones", check_zones(mods))
    rep.check("ecs-slr", check_ecs_slr(mods))
    rep.check("node-role", check_node_role(mods))
    rep.check("schedules", check_schedules(mods))
    rep.check("global-names", check_global_names(mods, by_path))
    rep.check("first-apply", check_first_apply(mods))
    rep.check("client-address", check_client_address(mods))
    rep.check("events-rule", check_events_rule(mods))
    rep.check("events-queue-policy", check_events_queue_policy(mods))
    rep.check("events-dlq", check_events_dlq(mods))
    rep.check("events-encryption", check_events_encryption(mods))
    rep.check("events-trail", check_events_trail(mods))
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=os.path.join(REPO, "terraform"))
    ap.add_argument("--checkov-config", default=os.path.join(REPO, ".checkov.yaml"))
    ap.add_argument("--negative", metavar="DIR", help="a fixture that must violate every check")
    ap.add_argument("--self-test", action="store_true", help="check --root and the bundled negative fixture")
    args = ap.parse_args(argv)

    passed = failed = 0
    runs = []
    if args.negative or args.self_test:
        neg = args.negative or os.path.join(HERE, "fixtures", "invariants-negative")
        runs.append(("negative", neg, os.path.join(neg, "checkov.yaml")))
    if not args.negative:
        runs.insert(0, ("positive", args.root, args.checkov_config))

    for kind, root, ckv in runs:
        rep = run(root, ckv)
        for name in CHECKS:
            violations = rep.results[name]
            if kind == "positive":
                ok = not violations
                print(f"{'PASS' if ok else 'FAIL'} invariant {name} on {os.path.relpath(root, REPO)}")
                for v in violations:
                    print(f"    {v}")
            else:
                ok = bool(violations)
                print(f"{'PASS' if ok else 'FAIL'} invariant {name} rejects {os.path.relpath(root, REPO)}"
                      + (f" ({len(violations)} violation(s), e.g. {violations[0]})" if ok else ": the check found nothing"))
            passed += ok
            failed += not ok
    print(f"invariants: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
