output "operator_role_arn" {
  description = "IRSA role of movieapp-operator: the chart's serviceAccount.annotations.\"eks.amazonaws.com/role-arn\"."
  value       = aws_iam_role.operator.arn
}

output "operator_policy_json" {
  description = "The operator's IAM policy document (for review and tests)."
  value       = local.operator_policy_json
}

output "api_worker_role_arns" {
  description = "IRSA role per MovieApp (key of var.movieapps): goes into the MovieApp's spec.worker.serviceAccount.annotations."
  value       = { for k, r in aws_iam_role.api_worker : k => r.arn }
}

output "api_worker_policy_json" {
  description = "The api-worker's IAM policy document per MovieApp, reused by the ECS side-services' task role."
  value       = local.api_worker_policy_json
}

output "load_balancer_controller_role_arn" {
  description = "IRSA role of the AWS Load Balancer Controller."
  value       = aws_iam_role.load_balancer_controller.arn
}

output "worker_boundary_arn" {
  description = "The permissions boundary of every worker role: the operator chart's operator.workerRole.boundaryArn."
  value       = aws_iam_policy.worker_boundary.arn
}
