data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  log_group  = "/aws/apigateway/${var.name}"
  lb_port    = 8080

  subnet_ids          = values(var.subnet_ids_by_zone_id)
  vpc_link_subnet_ids = [for zone, id in var.subnet_ids_by_zone_id : id if !contains(var.vpc_link_unsupported_zone_ids, zone)]
}

# --- Internal network load balancer in front of the api-worker pods --------
#
# Pods are registered by the AWS Load Balancer Controller from a
# TargetGroupBinding (targetType: ip) that points at the target group below
# and at the MovieApp's Service; see docs/terraform.md.

resource "aws_security_group" "vpc_link" {
  name        = "${var.name}-apigw-vpc-link"
  description = "API Gateway VPC link: outbound to the internal load balancer only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-apigw-vpc-link" })
}

resource "aws_security_group" "lb" {
  name        = "${var.name}-api-nlb"
  description = "Internal NLB for the api-worker: in from the VPC link, out to the pods"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-api-nlb" })
}

resource "aws_vpc_security_group_egress_rule" "vpc_link_to_lb" {
  security_group_id            = aws_security_group.vpc_link.id
  description                  = "VPC link to the load balancer listener"
  ip_protocol                  = "tcp"
  from_port                    = local.lb_port
  to_port                      = local.lb_port
  referenced_security_group_id = aws_security_group.lb.id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "lb_from_vpc_link" {
  security_group_id            = aws_security_group.lb.id
  description                  = "Requests from the API Gateway VPC link"
  ip_protocol                  = "tcp"
  from_port                    = local.lb_port
  to_port                      = local.lb_port
  referenced_security_group_id = aws_security_group.vpc_link.id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lb_to_pods" {
  security_group_id            = aws_security_group.lb.id
  description                  = "Requests and health checks to the api-worker pods"
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
  referenced_security_group_id = var.node_security_group_id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "pods_from_lb" {
  security_group_id            = var.node_security_group_id
  description                  = "api-worker pods from the internal load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.app_port
  to_port                      = var.app_port
  referenced_security_group_id = aws_security_group.lb.id

  tags = var.tags
}

resource "aws_lb" "api" {
  name                             = "${var.name}-api"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = local.subnet_ids
  security_groups                  = [aws_security_group.lb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection

  tags = var.tags
}

# The api-worker believes the X-Forwarded-For that API Gateway appends only
# from a trusted peer. Without client IP preservation the peer of every
# request is the load balancer's own address in these subnets, so their
# CIDRs are the worker's trusted proxies (output worker_trusted_proxies).
data "aws_subnet" "lb" {
  for_each = var.subnet_ids_by_zone_id

  id = each.value
}

resource "aws_lb_target_group" "api" {
  name                 = "${var.name}-api"
  port                 = var.app_port
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  preserve_client_ip   = "false"

  # The public /readyz (or /healthz) on the traffic port: the admin listener
  # (/metrics, the detailed /readyz) is never reachable from the load balancer.
  health_check {
    protocol            = "HTTP"
    path                = var.health_check_path
    port                = "traffic-port"
    healthy_threshold   = 2
    unhealthy_threshold = 2
    interval            = 10
  }

  tags = var.tags
}

resource "aws_lb_listener" "api" {
  load_balancer_arn = aws_lb.api.arn
  port              = local.lb_port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }

  tags = var.tags
}

# --- API Gateway HTTP API with a VPC link -----------------------------------

data "aws_iam_policy_document" "logs_key" {
  # checkov:skip=CKV_AWS_109:KMS key policies must use Resource "*" (the key itself); access is limited to this account and the Logs service
  # checkov:skip=CKV_AWS_111:KMS key policies must use Resource "*" (the key itself); access is limited to this account and the Logs service
  # checkov:skip=CKV_AWS_356:KMS key policies must use Resource "*" (the key itself); access is limited to this account and the Logs service
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
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group}*"]
    }
  }
}

resource "aws_kms_key" "logs" {
  description             = "${var.name} API access logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.logs_key.json

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "${local.log_group}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn

  tags = var.tags
}

# HTTP API VPC links exist only in some zones of a region (by zone ID: use1-az3
# has none). The link gets the subnets of the supported zones only.
resource "aws_apigatewayv2_vpc_link" "this" {
  name               = "${var.name}-api"
  subnet_ids         = local.vpc_link_subnet_ids
  security_group_ids = [aws_security_group.vpc_link.id]

  tags = var.tags

  lifecycle {
    precondition {
      condition     = length(local.vpc_link_subnet_ids) >= 2
      error_message = "Fewer than 2 of the subnets' zones support HTTP API VPC links (excluded: ${join(", ", var.vpc_link_unsupported_zone_ids)}); pin other availability_zone_ids."
    }
  }
}

resource "aws_apigatewayv2_api" "this" {
  name          = "${var.name}-api"
  protocol_type = "HTTP"
  description   = "movieapp api-worker behind ${var.domain_name}"
  # Only the custom domain serves the API.
  disable_execute_api_endpoint = true

  tags = var.tags
}

resource "aws_apigatewayv2_integration" "api_worker" {
  api_id               = aws_apigatewayv2_api.this.id
  integration_type     = "HTTP_PROXY"
  integration_method   = "ANY"
  integration_uri      = aws_lb_listener.api.arn
  connection_type      = "VPC_LINK"
  connection_id        = aws_apigatewayv2_vpc_link.this.id
  timeout_milliseconds = 29000
}

resource "aws_apigatewayv2_route" "default" {
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "$default"
  target             = "integrations/${aws_apigatewayv2_integration.api_worker.id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId        = "$context.requestId"
      ip               = "$context.identity.sourceIp"
      requestTime      = "$context.requestTime"
      httpMethod       = "$context.httpMethod"
      path             = "$context.path"
      routeKey         = "$context.routeKey"
      status           = "$context.status"
      protocol         = "$context.protocol"
      responseLength   = "$context.responseLength"
      latencyMs        = "$context.responseLatency"
      integrationError = "$context.integrationErrorMessage"
      userAgent        = "$context.identity.userAgent"
    })
  }

  tags = var.tags
}

# --- Custom domain: ACM certificate (DNS validated) and Route 53 ------------

resource "aws_acm_certificate" "api" {
  domain_name       = var.domain_name
  validation_method = "DNS"

  options {
    certificate_transparency_logging_preference = "ENABLED"
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = {
    for o in aws_acm_certificate.api.domain_validation_options : o.domain_name => {
      name   = o.resource_record_name
      type   = o.resource_record_type
      record = o.resource_record_value
    }
  }

  zone_id         = var.hosted_zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "api" {
  certificate_arn         = aws_acm_certificate.api.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_apigatewayv2_domain_name" "api" {
  domain_name = var.domain_name

  domain_name_configuration {
    certificate_arn = aws_acm_certificate_validation.api.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
    ip_address_type = var.dualstack ? "dualstack" : "ipv4"
  }

  tags = var.tags
}

resource "aws_apigatewayv2_api_mapping" "api" {
  api_id      = aws_apigatewayv2_api.this.id
  domain_name = aws_apigatewayv2_domain_name.api.id
  stage       = aws_apigatewayv2_stage.default.id
}

# AAAA only when the custom domain answers on IPv6 too: an AAAA alias to an
# IPv4-only domain name sends IPv6 clients nowhere.
resource "aws_route53_record" "api" {
  for_each = toset(var.dualstack ? ["A", "AAAA"] : ["A"])

  zone_id = var.hosted_zone_id
  name    = var.domain_name
  type    = each.value

  alias {
    name                   = aws_apigatewayv2_domain_name.api.domain_name_configuration[0].target_domain_name
    zone_id                = aws_apigatewayv2_domain_name.api.domain_name_configuration[0].hosted_zone_id
    evaluate_target_health = false
  }
}
