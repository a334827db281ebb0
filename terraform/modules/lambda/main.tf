# The api-worker on AWS Lambda (docs/lambda.md): one bootstrap package, two
# functions on provided.al2023 / x86_64, chosen by their handler:
#   <name>-http  API Gateway HTTP API (payload 2.0) -> the same router as `serve`
#   <name>-jobs  SQS event source mapping on the MovieApp's jobs queue, with
#                ReportBatchItemFailures -> the same job handler as `worker`
# x86_64 because the package is built natively by the project's toolchain
# (arm64 would need an aarch64 cross toolchain; see docs/lambda.md).

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  owner_tags = {
    "movieapp.io/namespace" = var.movieapp.namespace
    "movieapp.io/name"      = var.movieapp.name
  }

  # What `serve` and `worker` read from the operator's ConfigMap and Secret.
  connection = {
    MOVIEAPP_USERS_TABLE             = data.aws_dynamodb_table.this["users"].name
    MOVIEAPP_MOVIES_TABLE            = data.aws_dynamodb_table.this["movies"].name
    MOVIEAPP_WATCHLISTS_TABLE        = data.aws_dynamodb_table.this["watchlists"].name
    MOVIEAPP_JOBS_QUEUE_URL          = data.aws_sqs_queue.jobs.url
    MOVIEAPP_NOTIFICATIONS_TOPIC_ARN = data.aws_sns_topic.notifications.arn
    TMDB_BASE_URL                    = var.tmdb_base_url
    TMDB_API_KEY                     = var.tmdb_api_key
    # Routes are mapped at the root of the custom domain: never prefix the stage.
    AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH = "true"
  }

  # The HTTP function's peer is API Gateway's sourceIp, the client itself:
  # no proxy is trusted, so no forwarded header is ever believed. Last in
  # the merge, so var.environment cannot change it.
  client_address = {
    MOVIEAPP_TRUSTED_PROXIES = ""
  }

  all_functions = {
    http = {
      enabled              = var.http_enabled
      description          = "api-worker HTTP API of MovieApp ${var.movieapp.namespace}/${var.movieapp.name} (API Gateway HTTP API)"
      timeout              = var.http_timeout
      reserved_concurrency = var.http_reserved_concurrency
      environment = merge(local.connection, var.environment,
      var.token_signing_key == null ? {} : { MOVIEAPP_TOKEN_SIGNING_KEY = var.token_signing_key }, local.client_address)
    }
    jobs = {
      enabled              = var.jobs_enabled
      description          = "api-worker jobs of MovieApp ${var.movieapp.namespace}/${var.movieapp.name} (SQS)"
      timeout              = var.jobs_timeout
      reserved_concurrency = var.jobs_reserved_concurrency
      environment          = merge(local.connection, var.environment)
    }
  }
  functions      = { for k, f in local.all_functions : k => f if f.enabled }
  function_names = { for k, _ in local.functions : k => "${var.name}-${k}" }
  log_group_arns = [for k, _ in local.functions : "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name}-${k}"]
  routes         = var.http_enabled && var.api_id != null ? toset(var.route_keys) : toset([])
}

# --- The MovieApp's resources, by the operator's names, checked by tag -------

module "naming" {
  source = "./naming"

  namespace = var.movieapp.namespace
  name      = var.movieapp.name
}

data "aws_dynamodb_table" "this" {
  for_each = toset(["users", "movies", "watchlists"])

  name = module.naming.physical_names[each.key]

  lifecycle {
    postcondition {
      condition     = alltrue([for k, v in local.owner_tags : lookup(self.tags, k, "") == v])
      error_message = "Table ${self.name} is not tagged as MovieApp ${var.movieapp.namespace}/${var.movieapp.name}'s."
    }
  }
}

data "aws_sqs_queue" "jobs" {
  name = module.naming.physical_names["jobs"]

  lifecycle {
    postcondition {
      condition     = alltrue([for k, v in local.owner_tags : lookup(self.tags, k, "") == v])
      error_message = "Queue ${self.name} is not tagged as MovieApp ${var.movieapp.namespace}/${var.movieapp.name}'s."
    }
  }
}

data "aws_sns_topic" "notifications" {
  name = module.naming.physical_names["notifications"]

  lifecycle {
    postcondition {
      condition     = alltrue([for k, v in local.owner_tags : lookup(self.tags, k, "") == v])
      error_message = "Topic ${self.name} is not tagged as MovieApp ${var.movieapp.namespace}/${var.movieapp.name}'s."
    }
  }
}

# --- KMS: logs and the functions' environment (TMDB key, signing key) -------

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:KMS key policies must use Resource "*" (the key itself); access is limited to this account, the Logs service and the functions' role
  # checkov:skip=CKV_AWS_111:KMS key policies must use Resource "*" (the key itself); access is limited to this account, the Logs service and the functions' role
  # checkov:skip=CKV_AWS_356:KMS key policies must use Resource "*" (the key itself); access is limited to this account, the Logs service and the functions' role
  statement {
    sid = "AccountAdministers"
    # tflint-ignore: movieapp_aws_iam_policy_service_wildcard # the AWS default key policy: delegates the key to the account's IAM policies
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsUse"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name}-*"]
    }
  }

  # Lambda decrypts a function's environment at init under the function's
  # role, with the function's name as encryption context.
  statement {
    sid       = "FunctionsReadTheirEnvironment"
    actions   = ["kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.this.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:LambdaFunctionName"
      values   = values(local.function_names)
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name} api-worker Lambda functions: logs and environment"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = var.tags
}

# --- IAM: the api-worker's data plane, plus what a VPC function needs --------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = "${var.name}-lambda"
  description          = "api-worker Lambda functions of MovieApp ${var.movieapp.namespace}/${var.movieapp.name}"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600

  tags = merge(var.tags, local.owner_tags)
}

# Exactly the statements of the MovieApp's api-worker IRSA role: its tables,
# queue (also what the event source mapping polls with) and topic.
resource "aws_iam_role_policy" "data_plane" {
  name   = "api-worker"
  role   = aws_iam_role.this.id
  policy = var.data_plane_policy_json
}

data "aws_iam_policy_document" "runtime" {
  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for arn in local.log_group_arns : "${arn}:*"]
  }

  # X-Ray has no resource-level permissions for these two calls.
  statement {
    sid       = "Traces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # Lambda manages the functions' network interfaces with this role.
  statement {
    sid       = "DescribeInterfaces"
    actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
    resources = ["*"]
  }

  statement {
    sid     = "ManageInterfaces"
    actions = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
    resources = [
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*",
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:subnet/*",
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:security-group/*",
    ]
  }
}

resource "aws_iam_role_policy" "runtime" {
  name   = "lambda-runtime"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.runtime.json
}

# --- Network: no inbound; HTTPS out (AWS through the VPC endpoints, TMDB through NAT)

resource "aws_security_group" "this" {
  name        = "${var.name}-lambda"
  description = "api-worker Lambda functions: no inbound; outbound HTTPS (AWS APIs, TMDB)"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-lambda" })
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to AWS APIs and TMDB"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

# --- The functions -----------------------------------------------------------

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_116:Neither function is invoked asynchronously: API Gateway invokes synchronously, and failed SQS jobs go to the MovieApp's dead-letter queue through the queue's redrive policy
  # checkov:skip=CKV_AWS_272:The package is built from this checkout by make lambda-package and pinned by source_code_hash; AWS Signer code signing is left to deployments that sign their artifacts
  for_each = local.functions

  function_name    = local.function_names[each.key]
  description      = each.value.description
  role             = aws_iam_role.this.arn
  runtime          = "provided.al2023"
  handler          = each.key
  architectures    = ["x86_64"]
  filename         = var.package_file
  source_code_hash = filebase64sha256(var.package_file)
  memory_size      = var.memory_size
  timeout          = each.value.timeout
  # -1: no reservation (the function shares the account's unreserved pool).
  reserved_concurrent_executions = coalesce(each.value.reserved_concurrency, -1)
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = each.value.environment
  }

  tracing_config {
    mode = "Active"
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.this.id]
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  tags = merge(var.tags, local.owner_tags)

  depends_on = [aws_iam_role_policy.data_plane, aws_iam_role_policy.runtime]

  lifecycle {
    precondition {
      condition     = each.key != "http" || var.token_signing_key != null
      error_message = "The HTTP function needs token_signing_key (the MovieApp's token signing key, so tokens work on both runtimes)."
    }

    precondition {
      condition     = each.key != "jobs" || var.jobs_timeout <= var.queue_visibility_timeout_seconds
      error_message = "jobs_timeout must not exceed the queue's visibility timeout (queue_visibility_timeout_seconds)."
    }
  }
}

# --- HTTP: routes of the edge's HTTP API, as an alternative to the VPC link --

resource "aws_apigatewayv2_integration" "http" {
  count = length(local.routes) > 0 ? 1 : 0

  api_id                 = var.api_id
  description            = "api-worker HTTP function (Lambda)"
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.this["http"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "http" {
  for_each = local.routes

  api_id             = var.api_id
  route_key          = each.value
  target             = "integrations/${aws_apigatewayv2_integration.http[0].id}"
  authorization_type = "NONE"
}

resource "aws_lambda_permission" "api_gateway" {
  count = length(local.routes) > 0 ? 1 : 0

  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["http"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "arn:${local.partition}:execute-api:${local.region}:${local.account_id}:${var.api_id}/*/*"
}

# --- Jobs: the MovieApp's jobs queue, failures reported per message ----------

resource "aws_lambda_event_source_mapping" "jobs" {
  count = var.jobs_enabled ? 1 : 0

  event_source_arn        = data.aws_sqs_queue.jobs.arn
  function_name           = aws_lambda_function.this["jobs"].arn
  batch_size              = var.jobs_batch_size
  function_response_types = ["ReportBatchItemFailures"]
  enabled                 = true

  scaling_config {
    maximum_concurrency = var.jobs_reserved_concurrency == null ? var.jobs_maximum_concurrency : min(var.jobs_maximum_concurrency, var.jobs_reserved_concurrency)
  }

  tags = var.tags
}
