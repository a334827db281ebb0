locals {
  name         = "movieapp-${var.environment}"
  cluster_name = "movieapp-${var.environment}"
  edge_app     = var.movieapps[var.edge_movieapp]
}

module "network" {
  source = "../../modules/network"

  name                  = local.name
  cidr_block            = var.vpc_cidr
  availability_zone_ids = var.availability_zone_ids
  single_nat_gateway    = var.single_nat_gateway
  cluster_name          = local.cluster_name
}

module "cluster" {
  source = "../../modules/cluster"

  name                         = local.cluster_name
  kubernetes_version           = var.kubernetes_version
  vpc_id                       = module.network.vpc_id
  subnet_ids                   = module.network.private_subnet_ids
  availability_zone_ids        = module.network.availability_zone_ids
  endpoint_public_access       = var.cluster_endpoint_public_access
  endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
  cluster_admin_principal_arns = var.cluster_admin_principal_arns
  node_instance_types          = var.node_instance_types
  node_min_size                = var.node_min_size
  node_desired_size            = var.node_min_size
  node_max_size                = var.node_max_size
}

module "registry" {
  source = "../../modules/registry"

  name = local.name
}

module "edge" {
  source = "../../modules/edge"

  name                   = local.name
  vpc_id                 = module.network.vpc_id
  subnet_ids_by_zone_id  = module.network.private_subnet_ids_by_zone_id
  node_security_group_id = module.cluster.node_security_group_id
  domain_name            = var.domain_name
  hosted_zone_id         = var.hosted_zone_id
  dualstack              = var.api_dualstack
  throttling_rate_limit  = var.api_throttling_rate_limit
  throttling_burst_limit = var.api_throttling_burst_limit
}

module "aws_events" {
  source = "../../modules/aws-events"

  name           = local.name
  create_trail   = var.aws_events_create_trail
  external_names = var.aws_events_external_names
}

module "iam" {
  source = "../../modules/iam"

  name                = local.name
  cluster_id          = local.cluster_name # the operator's --cluster-id (operator_helm_values)
  oidc_provider_arn   = module.cluster.oidc_provider_arn
  oidc_issuer         = module.cluster.oidc_issuer
  ecr_repository_arns = [for name, arn in module.registry.repository_arns : arn if !startswith(name, "charts/")] # images only
  movieapps           = var.movieapps
  target_group_arns   = [module.edge.target_group_arn]
  events_queue_arns   = [module.aws_events.queue_arn]
}

module "side_services" {
  source = "../../modules/ecs-side-services"

  name                      = "${local.name}-side"
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  availability_zone_ids     = module.network.availability_zone_ids
  api_worker_repository_url = module.registry.repository_urls["api-worker"]
  api_worker_image_tag      = var.api_worker_image_tag
  schedules_enabled         = var.side_tasks_enabled
  task_policy_json          = module.iam.api_worker_policy_json[var.edge_movieapp]
  environment               = merge({ AWS_REGION = var.region }, var.side_tasks_environment)
  secrets                   = var.side_tasks_secrets

  tags = {
    "movieapp.io/namespace" = local.edge_app.namespace
    "movieapp.io/name"      = local.edge_app.name
  }
}

module "lambda" {
  source = "../../modules/lambda"
  count  = var.lambda.enabled ? 1 : 0

  name                   = "${local.name}-${var.edge_movieapp}"
  movieapp               = local.edge_app
  package_file           = var.lambda.package_file
  data_plane_policy_json = module.iam.api_worker_policy_json[var.edge_movieapp]
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  http_enabled           = var.lambda.http
  jobs_enabled           = var.lambda.jobs
  api_id                 = module.edge.api_id
  route_keys             = var.lambda.route_keys
  tmdb_api_key           = var.lambda_tmdb_api_key
  token_signing_key      = var.lambda_token_signing_key

  tags = {
    "movieapp.io/namespace" = local.edge_app.namespace
    "movieapp.io/name"      = local.edge_app.name
  }
}
