output "cluster_name" {
  description = "Name of the ECS cluster running the side-services."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "task_definition_arns" {
  description = "Task definition ARN per side task."
  value       = { for k, t in aws_ecs_task_definition.side : k => t.arn }
}

output "schedule_arns" {
  description = "EventBridge Scheduler schedule ARN per side task."
  value       = { for k, s in aws_scheduler_schedule.side : k => s.arn }
}

output "task_role_arn" {
  description = "IAM role the side tasks run as."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "CloudWatch Logs group of the side tasks."
  value       = aws_cloudwatch_log_group.tasks.name
}
