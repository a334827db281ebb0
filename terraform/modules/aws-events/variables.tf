variable "name" {
  type        = string
  description = "Environment prefix of the names (for example \"movieapp-prod\"): the rule <name>-aws-changes, the queues <name>-aws-events and <name>-aws-events-dlq, the trail <name>-aws-events."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "resource_prefix" {
  type        = string
  description = "Prefix of every AWS resource the operator names (operator/src/naming.rs): the rule keeps writes on these names only."
  default     = "movieapp-"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*-$", var.resource_prefix))
    error_message = "resource_prefix must be lowercase letters, digits and dashes, ending in a dash."
  }
}

variable "external_names" {
  type        = list(string)
  description = "Names outside resource_prefix that MovieApps give their resources explicitly (spec.database.tableNames, spec.queue.name, spec.queue.deadLetterQueueName, spec.notifications.topicName): the rule matches writes on these too. Without them such drift is found by the resync only."
  default     = []

  validation {
    condition     = alltrue([for n in var.external_names : can(regex("^[A-Za-z0-9_.-]{1,256}$", n))])
    error_message = "external_names must be DynamoDB table, SQS queue or SNS topic names: letters, digits, _ . and -."
  }
}

variable "create_trail" {
  type        = bool
  description = "Create a CloudTrail trail (write-only management events, multi-region, to a KMS-encrypted S3 bucket). EventBridge receives CloudTrail's events only while a trail logs in the region; set false when the account already has one, such as an organization trail (a second trail's management events are charged)."
  default     = true
}

variable "trail_log_retention_days" {
  type        = number
  description = "Days the trail's log files stay in its S3 bucket."
  default     = 90

  validation {
    condition     = var.trail_log_retention_days >= 1
    error_message = "trail_log_retention_days must be at least 1."
  }
}

variable "message_retention_seconds" {
  type        = number
  description = "How long an event waits in the queue for the operator (SQS: 60 to 1209600 seconds). An event older than a resync interval is no news: the resync has read AWS since."
  default     = 86400

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600."
  }
}

variable "max_receive_count" {
  type        = number
  description = "Receives of a message the operator cannot read before SQS moves it to the dead-letter queue."
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags of every resource (the provider's default_tags apply too)."
  default     = {}
}
