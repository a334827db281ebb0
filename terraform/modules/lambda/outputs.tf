output "function_names" {
  description = "Function name per deployed function (http, jobs)."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "function_arns" {
  description = "Function ARN per deployed function (http, jobs)."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "role_arn" {
  description = "Execution role of the functions."
  value       = aws_iam_role.this.arn
}

output "log_group_names" {
  description = "CloudWatch log group per deployed function."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "routes" {
  description = "Route keys of the HTTP API sent to the HTTP function."
  value       = sort(keys(aws_apigatewayv2_route.http))
}

output "movieapp_resources" {
  description = "The MovieApp's resources the functions were wired to (found by the operator's naming rule, checked by tag)."
  value = {
    tables           = { for k, t in data.aws_dynamodb_table.this : k => t.name }
    jobs_queue_url   = data.aws_sqs_queue.jobs.url
    jobs_queue_arn   = data.aws_sqs_queue.jobs.arn
    notifications    = data.aws_sns_topic.notifications.arn
    event_source_ids = [for m in aws_lambda_event_source_mapping.jobs : m.uuid]
  }
}
