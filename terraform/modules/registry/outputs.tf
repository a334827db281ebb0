output "repository_urls" {
  description = "Repository URI per repository name (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = { for name, r in aws_ecr_repository.this : name => r.repository_url }
}

output "repository_names" {
  description = "Repository name per repository (<name>/<repository>): the MovieApp's spec.worker.image.repository for api-worker."
  value       = { for name, r in aws_ecr_repository.this : name => r.name }
}

output "repository_arns" {
  description = "Repository ARN per repository name."
  value       = { for name, r in aws_ecr_repository.this : name => r.arn }
}

output "registry" {
  description = "Host of the registry (<account>.dkr.ecr.<region>.amazonaws.com): docker login, helm registry login."
  value       = split("/", aws_ecr_repository.this["api-worker"].repository_url)[0]
}

output "chart_repository" {
  description = "Where helm push puts the operator's chart and helm install finds it: oci://<registry>/<name>/charts."
  value       = "oci://${split("/", aws_ecr_repository.this["api-worker"].repository_url)[0]}/${var.name}/charts"
}

output "registry_id" {
  description = "The registry (account) ID."
  value       = data.aws_caller_identity.current.account_id
}

output "kms_key_arn" {
  description = "KMS key encrypting the images."
  value       = aws_kms_key.ecr.arn
}
