data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  prefix     = var.resource_name_prefix
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

# The policies are built from the AWS calls each component declares
# (model/src/iam.rs) and written here by `make iam-policies`; a unit test
# fails when these templates differ from what the declarations render.
locals {
  operator_policy_json = templatefile("${path.module}/policies/operator.json.tftpl", {
    partition              = local.partition
    region                 = local.region
    account                = local.account_id
    prefix                 = local.prefix
    cluster                = var.cluster_id
    require_ownership_tags = var.require_ownership_tags
    ecr_repository_arns    = var.ecr_repository_arns
    events_queue_arns      = var.events_queue_arns
    # CreateRole and PutRolePermissionsBoundary only with this boundary.
    worker_boundary_arn = aws_iam_policy.worker_boundary.arn
  })
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
  policy = local.operator_policy_json
}

# --- (b) the api-worker of each MovieApp: data plane on its own resources --

# The operator's physical names of each MovieApp's resources.
module "app_names" {
  source   = "../lambda/naming"
  for_each = var.movieapps

  namespace = each.value.namespace
  name      = each.value.name
}

# Exactly the MovieApp's own tables, jobs queue and topic, by their exact
# ARNs (a wildcard over movieapp-* would let one tenant's worker publish
# forged jobs and notifications to every other tenant's topic); tables and
# queue also only while they carry its ownership tags.
locals {
  api_worker_policy_json = {
    for k, app in var.movieapps : k => templatefile("${path.module}/policies/worker.json.tftpl", {
      partition              = local.partition
      region                 = local.region
      account                = local.account_id
      require_ownership_tags = var.require_ownership_tags
      namespace              = app.namespace
      name                   = app.name
      users_table            = module.app_names[k].physical_names["users"]
      movies_table           = module.app_names[k].physical_names["movies"]
      watchlists_table       = module.app_names[k].physical_names["watchlists"]
      jobs_queue             = module.app_names[k].physical_names["jobs"]
      topic                  = module.app_names[k].physical_names["notifications"]
    })
  }
}

# The cap on every worker role: what any api-worker component may call, on
# names under the prefix only, whatever policy the role is given.
resource "aws_iam_policy" "worker_boundary" {
  name        = "${var.name}-worker-boundary"
  description = "Permissions boundary of the api-worker roles"
  policy = templatefile("${path.module}/policies/worker-boundary.json.tftpl", {
    partition = local.partition
    region    = local.region
    account   = local.account_id
    prefix    = local.prefix
  })

  tags = var.tags
}

resource "aws_iam_role" "api_worker" {
  for_each = var.movieapps

  name                 = "${var.name}-app-${each.key}"
  description          = "api-worker of MovieApp ${each.value.namespace}/${each.value.name} (IRSA)"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust["app-${each.key}"].json
  max_session_duration = 3600
  permissions_boundary = aws_iam_policy.worker_boundary.arn

  tags = merge(var.tags, {
    "movieapp.io/namespace" = each.value.namespace
    "movieapp.io/name"      = each.value.name
  })
}

resource "aws_iam_role_policy" "api_worker" {
  for_each = var.movieapps

  name   = "api-worker"
  role   = aws_iam_role.api_worker[each.key].id
  policy = local.api_worker_policy_json[each.key]
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
