variable "name" {
  type        = string
  description = "Name of the ECS cluster and prefix of its resources (for example \"movieapp-prod-side\")."
}

variable "vpc_id" {
  type        = string
  description = "VPC the container instances and tasks run in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the container instances and task ENIs (no public IPs anywhere)."
}

variable "availability_zone_ids" {
  type        = list(string)
  description = "Availability zone IDs of subnet_ids; the plan fails when instance_type is not offered in one of them."
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type of the ECS container instances."
  default     = "t3.small"
}

variable "min_instances" {
  type        = number
  description = "Minimum container instances (0 lets managed scaling stop them between runs)."
  default     = 0
}

variable "max_instances" {
  type        = number
  description = "Maximum container instances."
  default     = 2
}

variable "api_worker_repository_url" {
  type        = string
  description = "ECR repository URI of the api-worker image."
}

variable "api_worker_image_tag" {
  type        = string
  description = "Tag of the api-worker image the side tasks run: a version tag (immutable, so it names one build). null until the image is pushed; schedules_enabled requires it."
  default     = null
}

variable "schedules_enabled" {
  type        = bool
  description = "Run the side tasks on their schedules. Off until the image is pushed (api_worker_image_tag) and the MovieApp's connection settings are in environment/secrets; turning it on without them fails the plan with what is missing."
  default     = false
}

variable "side_tasks" {
  type = map(object({
    command             = list(string)
    schedule_expression = string
    cpu                 = optional(number, 256)
    memory              = optional(number, 512)
    environment         = optional(map(string), {})
    enabled             = optional(bool, true)
  }))
  description = "Scheduled api-worker subcommands, keyed by a short name. The image's api-worker binary is the entry point, so command holds its arguments. A task runs only when both its enabled and schedules_enabled are true."
  default = {
    sync-popular = {
      command             = ["sync-popular"]
      schedule_expression = "rate(6 hours)"
    }
  }
}

variable "environment" {
  type        = map(string)
  description = "Environment shared by every side task: the MovieApp's connection settings (AWS_REGION, table names, queue URL, topic ARN, TMDB_BASE_URL) as the operator reports them in the MovieApp's status."
  default     = {}
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables filled from Secrets Manager secret ARNs (for example TMDB_API_KEY)."
  default     = {}
}

variable "task_policy_json" {
  type        = string
  description = "IAM policy of the task role: the api-worker's data-plane policy for the MovieApp the tasks work on (iam module output api_worker_policy_json)."
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep the side tasks' logs."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
