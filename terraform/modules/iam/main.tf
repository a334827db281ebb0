data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  prefix     = var.resource_name_prefix

  table_arns = [
    "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${local.prefix}*",
  ]
  table_and_index_arns = concat(local.table_arns, [
    "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${local.prefix}*/index/*",
  ])
  queue_arns = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.prefix}*"]
  # Also matches subscription ARNs (<topic arn>:<id>).
  topic_arns = ["arn:${local.partition}:sns:${local.region}:${local.account_id}:${local.prefix}*"]

  managed_by_tag = "app.kubernetes.io/managed-by"
  managed_by     = "movieapp-operator"
}

# IRSA trust: only the given ServiceAccount of this cluster, only for STS.
data "aws_iam_policy_document" "irsa_trust" {
  for_each = merge(
    { operator = { namespace = var.operator_namespace, service_account = var.operator_service_account } },
    { for k, app in var.movieapps : "app-${k}" => { namespace = app.namespace, service_account = app.name } },
    { load-balancer-controller = var.load_balancer_controller },
  )

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# --- (a) the operator: exactly the control-plane calls it makes ------------

data "aws_iam_policy_document" "operator" {
  # Reads are needed on every movieapp-* name, owned or not: that is how the
  # operator detects a name owned by someone else (NameConflict).
  statement {
    sid = "DynamoDBRead"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:DescribeContinuousBackups",
      "dynamodb:DescribeTimeToLive",
      "dynamodb:ListTagsOfResource",
    ]
    resources = local.table_arns
  }

  statement {
    sid       = "DynamoDBCreateAndTag"
    actions   = ["dynamodb:CreateTable", "dynamodb:TagResource", "dynamodb:UntagResource"]
    resources = local.table_arns
  }

  statement {
    sid = "DynamoDBChangeOwned"
    actions = [
      "dynamodb:UpdateTable",
      "dynamodb:DeleteTable",
      "dynamodb:UpdateContinuousBackups",
      "dynamodb:UpdateTimeToLive",
    ]
    resources = local.table_and_index_arns

    dynamic "condition" {
      for_each = var.require_ownership_tags ? [1] : []
      content {
        test     = "StringEquals"
        variable = "aws:ResourceTag/${local.managed_by_tag}"
        values   = [local.managed_by]
      }
    }
  }

  statement {
    sid       = "SQSRead"
    actions   = ["sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:ListQueueTags"]
    resources = local.queue_arns
  }

  statement {
    sid       = "SQSCreateAndTag"
    actions   = ["sqs:CreateQueue", "sqs:TagQueue", "sqs:UntagQueue"]
    resources = local.queue_arns
  }

  statement {
    sid       = "SQSChangeOwned"
    actions   = ["sqs:SetQueueAttributes", "sqs:DeleteQueue"]
    resources = local.queue_arns

    dynamic "condition" {
      for_each = var.require_ownership_tags ? [1] : []
      content {
        test     = "StringEquals"
        variable = "aws:ResourceTag/${local.managed_by_tag}"
        values   = [local.managed_by]
      }
    }
  }

  # SNS topics and subscriptions: scoped by name (topic ARNs also prefix the
  # subscription ARNs); SNS tag conditions are not relied upon.
  statement {
    sid = "SNSTopics"
    actions = [
      "sns:CreateTopic",
      "sns:GetTopicAttributes",
      "sns:SetTopicAttributes",
      "sns:DeleteTopic",
      "sns:Subscribe",
      "sns:Unsubscribe",
      "sns:ListSubscriptionsByTopic",
      "sns:GetSubscriptionAttributes",
      "sns:SetSubscriptionAttributes",
      "sns:TagResource",
      "sns:UntagResource",
      "sns:ListTagsForResource",
    ]
    resources = local.topic_arns
  }

  statement {
    sid       = "ECRResolveImages"
    actions   = ["ecr:DescribeImages", "ecr:BatchGetImage", "ecr:DescribeRepositories"]
    resources = var.ecr_repository_arns
  }
}

resource "aws_iam_role" "operator" {
  name                 = "${var.name}-operator"
  description          = "movieapp-operator (IRSA ${var.operator_namespace}/${var.operator_service_account})"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust["operator"].json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "operator" {
  name   = "movieapp-operator"
  role   = aws_iam_role.operator.id
  policy = data.aws_iam_policy_document.operator.json
}

# --- (b) the api-worker of each MovieApp: data plane on its own resources --

# The operator's physical names of each MovieApp's resources.
module "app_names" {
  source   = "../lambda/naming"
  for_each = var.movieapps

  namespace = each.value.namespace
  name      = each.value.name
}

data "aws_iam_policy_document" "api_worker" {
  for_each = var.movieapps

  statement {
    sid = "OwnTables"
    actions = [
      "dynamodb:DescribeTable", # /readyz
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
    ]
    resources = local.table_and_index_arns

    dynamic "condition" {
      for_each = var.require_ownership_tags ? { "movieapp.io/namespace" = each.value.namespace, "movieapp.io/name" = each.value.name } : {}
      content {
        test     = "StringEquals"
        variable = "aws:ResourceTag/${condition.key}"
        values   = [condition.value]
      }
    }
  }

  # TransactWriteItems is authorized per item as PutItem/UpdateItem above; no
  # separate IAM action exists for it.

  statement {
    sid = "OwnQueue"
    actions = [
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = local.queue_arns

    dynamic "condition" {
      for_each = var.require_ownership_tags ? { "movieapp.io/namespace" = each.value.namespace, "movieapp.io/name" = each.value.name } : {}
      content {
        test     = "StringEquals"
        variable = "aws:ResourceTag/${condition.key}"
        values   = [condition.value]
      }
    }
  }

  # Exactly this MovieApp's topic: a wildcard would let one tenant's worker
  # publish forged jobs and notifications to every other tenant's topic.
  statement {
    sid       = "OwnTopic"
    actions   = ["sns:Publish", "sns:GetTopicAttributes"] # GetTopicAttributes: /readyz
    resources = ["arn:${local.partition}:sns:${local.region}:${local.account_id}:${module.app_names[each.key].physical_names["notifications"]}"]
  }
}

resource "aws_iam_role" "api_worker" {
  for_each = var.movieapps

  name                 = "${var.name}-app-${each.key}"
  description          = "api-worker of MovieApp ${each.value.namespace}/${each.value.name} (IRSA)"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust["app-${each.key}"].json
  max_session_duration = 3600

  tags = merge(var.tags, {
    "movieapp.io/namespace" = each.value.namespace
    "movieapp.io/name"      = each.value.name
  })
}

resource "aws_iam_role_policy" "api_worker" {
  for_each = var.movieapps

  name   = "api-worker"
  role   = aws_iam_role.api_worker[each.key].id
  policy = data.aws_iam_policy_document.api_worker[each.key].json
}

# --- AWS Load Balancer Controller, TargetGroupBinding only -----------------

data "aws_iam_policy_document" "load_balancer_controller" {
  # Describe calls cannot be limited to resources in IAM.
  statement {
    sid = "Discover"
    actions = [
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeVpcs",
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(var.target_group_arns) > 0 ? [1] : []
    content {
      sid       = "RegisterPods"
      actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
      resources = var.target_group_arns
    }
  }
}

resource "aws_iam_role" "load_balancer_controller" {
  name                 = "${var.name}-load-balancer-controller"
  description          = "AWS Load Balancer Controller, TargetGroupBinding only (IRSA)"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust["load-balancer-controller"].json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "load_balancer_controller" {
  name   = "target-group-binding"
  role   = aws_iam_role.load_balancer_controller.id
  policy = data.aws_iam_policy_document.load_balancer_controller.json
}
