output "queue_url" {
  description = "URL of the events queue: the operator's --events-queue-url (chart value operator.eventsQueueUrl)."
  value       = aws_sqs_queue.events.url
}

output "queue_arn" {
  description = "ARN of the events queue, for the operator's IAM policy (module iam, events_queue_arns)."
  value       = aws_sqs_queue.events.arn
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue: messages the operator could not read and events EventBridge could not deliver."
  value       = aws_sqs_queue.dead_letter.url
}

output "rule_arn" {
  description = "ARN of the EventBridge rule, the only sender the queues accept."
  value       = aws_cloudwatch_event_rule.changes.arn
}

output "trail_arn" {
  description = "ARN of the trail this module made; null when create_trail is false."
  value       = var.create_trail ? aws_cloudtrail.this[0].arn : null
}
