output "repository_urls" {
  description = "Repository URI per repository name (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = { for name, r in aws_ecr_repository.this : name => r.repository_url }
}

output "repository_arns" {
  description = "Repository ARN per repository name."
  value       = { for name, r in aws_ecr_repository.this : name => r.arn }
}

output "registry_id" {
  description = "The registry (account) ID."
  value       = data.aws_caller_identity.current.account_id
}

output "kms_key_arn" {
  description = "KMS key encrypting the images."
  value       = aws_kms_key.ecr.arn
}
