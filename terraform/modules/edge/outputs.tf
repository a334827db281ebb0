output "api_endpoint" {
  description = "Public URL of the API (the custom domain; the execute-api endpoint is disabled)."
  value       = "https://${aws_apigatewayv2_domain_name.api.domain_name}"
}

output "domain_name" {
  description = "Custom domain of the API."
  value       = aws_apigatewayv2_domain_name.api.domain_name
}

output "api_id" {
  description = "ID of the API Gateway HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "target_group_arn" {
  description = "Target group the api-worker pods are registered in (TargetGroupBinding spec.targetGroupARN)."
  value       = aws_lb_target_group.api.arn
}

output "worker_trusted_proxies" {
  description = "MOVIEAPP_TRUSTED_PROXIES for the api-worker pods behind this load balancer: the CIDRs of its subnets, where its addresses (the pods' TCP peer) are. Narrower than the operator's default (the private ranges); set it in the MovieApp's spec.worker.env."
  value       = join(",", sort([for s in data.aws_subnet.lb : s.cidr_block]))
}

output "load_balancer_security_group_id" {
  description = "Security group of the internal load balancer."
  value       = aws_security_group.lb.id
}

output "certificate_arn" {
  description = "ACM certificate of the custom domain."
  value       = aws_acm_certificate_validation.api.certificate_arn
}
