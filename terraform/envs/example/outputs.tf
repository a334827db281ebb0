# Values for the operator's Helm chart (charts/movieapp-operator), the
# MovieApp spec and the TargetGroupBinding. docs/terraform.md shows where
# each one goes.

output "region" {
  description = "AWS region (operator --default-region, MovieApp spec.region)."
  value       = var.region
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...; Load Balancer Controller clusterName)."
  value       = module.cluster.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.cluster.cluster_endpoint
}

output "vpc_id" {
  description = "VPC ID (Load Balancer Controller vpcId: pods cannot reach IMDS to discover it)."
  value       = module.network.vpc_id
}

output "operator_role_arn" {
  description = "IRSA role of the operator: chart value serviceAccount.annotations.\"eks.amazonaws.com/role-arn\"."
  value       = module.iam.operator_role_arn
}

output "operator_image_repository" {
  description = "ECR URI of the operator image: chart value image.repository."
  value       = module.registry.repository_urls["movieapp-operator"]
}

output "api_worker_image_repository" {
  description = "ECR URI of the api-worker image (the MovieApp's spec.worker.image.repository names the repository api-worker in this registry)."
  value       = module.registry.repository_urls["api-worker"]
}

output "registry" {
  description = "Host of the ECR registry: docker login / helm registry login."
  value       = module.registry.registry
}

output "chart_repository" {
  description = "OCI location of the operator's chart: helm push <chart>.tgz <this>; helm install movieapp-operator <this>/movieapp-operator."
  value       = module.registry.chart_repository
}

output "api_worker_repository_name" {
  description = "Name of the api-worker's ECR repository (<environment prefix>/api-worker): the MovieApp's spec.worker.image.repository."
  value       = module.registry.repository_names["api-worker"]
}

output "api_worker_role_arns" {
  description = "IRSA role per MovieApp: spec.worker.serviceAccount.annotations.\"eks.amazonaws.com/role-arn\"."
  value       = module.iam.api_worker_role_arns
}

output "load_balancer_controller_role_arn" {
  description = "IRSA role of the AWS Load Balancer Controller (serviceAccount.annotations.\"eks.amazonaws.com/role-arn\" of its chart)."
  value       = module.iam.load_balancer_controller_role_arn
}

output "api_target_group_arn" {
  description = "Target group the TargetGroupBinding registers the api-worker pods in."
  value       = module.edge.target_group_arn
}

output "api_worker_trusted_proxies" {
  description = "MovieApp spec.worker.env MOVIEAPP_TRUSTED_PROXIES: the internal load balancer's subnets, the only peers whose X-Forwarded-For the api-worker believes."
  value       = module.edge.worker_trusted_proxies
}

output "events_queue_url" {
  description = "The queue of AWS change events: chart value operator.eventsQueueUrl (movieapp-operator run --events-queue-url)."
  value       = module.aws_events.queue_url
}

output "api_endpoint" {
  description = "Public URL of the API."
  value       = module.edge.api_endpoint
}

output "domain" {
  description = "Custom domain of the API."
  value       = module.edge.domain_name
}

output "side_services_cluster_name" {
  description = "ECS cluster running the scheduled side tasks (sync-popular)."
  value       = module.side_services.cluster_name
}

output "operator_helm_values" {
  description = "The operator chart's values from this stack (image, IRSA role, cluster id, the AWS change events queue, the worker roles' OIDC provider and boundary): terraform output -json operator_helm_values > operator-values.json; helm install ... -f operator-values.json."
  value = {
    image = {
      repository = module.registry.repository_urls["movieapp-operator"]
    }
    serviceAccount = {
      annotations = {
        "eks.amazonaws.com/role-arn" = module.iam.operator_role_arn
      }
    }
    operator = {
      # Tagged on every AWS resource the operator makes (movieapp.io/cluster):
      # another cluster in this account never adopts them.
      clusterId      = local.cluster_name
      eventsQueueUrl = module.aws_events.queue_url
      # The operator makes each MovieApp's worker role (IRSA) under this
      # boundary: no Terraform change per MovieApp.
      workerRole = {
        oidcProviderArn = module.cluster.oidc_provider_arn
        boundaryArn     = module.iam.worker_boundary_arn
      }
    }
  }
}

output "lambda_function_names" {
  description = "The api-worker's Lambda functions (http, jobs) when var.lambda.enabled; null otherwise."
  value       = one(module.lambda[*].function_names)
}
