variable "name" {
  type        = string
  description = "Prefix of the functions, role, log groups and key (for example \"movieapp-prod-netflix-clone\"); the functions are <name>-http and <name>-jobs."

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,40}$", var.name))
    error_message = "name must be 1-40 letters, digits or hyphens (function and role names are limited to 64 characters)."
  }
}

variable "movieapp" {
  type = object({
    namespace = string
    name      = string
  })
  description = "The MovieApp whose DynamoDB tables, jobs queue and topic the functions use. They are found by the operator's naming rule (movieapp-<namespace>-<name>-<hash>-<component>) and must carry its movieapp.io/namespace and movieapp.io/name tags: apply after the MovieApp is Ready."
}

variable "package_file" {
  type        = string
  description = "Path of the Lambda zip holding bootstrap (make lambda-package; api-worker/lambda/package.sh prints it)."
}

variable "data_plane_policy_json" {
  type        = string
  description = "The api-worker's data-plane policy for this MovieApp (module iam output api_worker_policy_json[<key>]): the functions get exactly what its IRSA role has."
}

variable "vpc_id" {
  type        = string
  description = "VPC the functions run in (the cluster's: NAT for TMDB, VPC endpoints for AWS)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for the functions' network interfaces."
}

variable "http_enabled" {
  type        = bool
  description = "Deploy the HTTP function (API Gateway HTTP API, payload 2.0)."
  default     = true
}

variable "jobs_enabled" {
  type        = bool
  description = "Deploy the jobs function and its SQS event source mapping on the MovieApp's jobs queue."
  default     = true
}

variable "api_id" {
  type        = string
  description = "ID of the API Gateway HTTP API (module edge output api_id) to route to the HTTP function; null leaves routing to you."
  default     = null
}

variable "route_keys" {
  type        = list(string)
  description = "Routes of api_id sent to the HTTP function. The default takes every path, so the VPC-link $default route only answers what no route matches; narrow it (for example [\"ANY /api/v1/movies/{proxy+}\"]) to move part of the API."
  default     = ["ANY /{proxy+}", "ANY /"]
}

variable "memory_size" {
  type        = number
  description = "Memory of each function in MB (CPU grows with it; argon2 password hashing likes at least 512)."
  default     = 512

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "http_timeout" {
  type        = number
  description = "Time limit of one HTTP invocation in seconds (API Gateway waits at most 30 s; the app's own request time-out is 10 s)."
  default     = 15

  validation {
    condition     = var.http_timeout >= 1 && var.http_timeout <= 29
    error_message = "http_timeout must be 1-29 seconds (API Gateway's integration limit is 30 s)."
  }
}

variable "jobs_timeout" {
  type        = number
  description = "Time limit of one SQS batch in seconds; at most the queue's visibility timeout."
  default     = 50
}

variable "queue_visibility_timeout_seconds" {
  type        = number
  description = "The MovieApp's spec.queue.visibilityTimeoutSeconds (default 60). Lambda refuses an event source mapping whose function may run longer."
  default     = 60
}

variable "http_reserved_concurrency" {
  type        = number
  description = "Reserved (and maximum) concurrent executions of the HTTP function; null reserves nothing. AWS keeps 100 of the account's concurrency unreserved, so a reservation needs a raised quota: a new account's quota (as low as 10) leaves nothing to reserve. API Gateway's throttling (edge module) caps the HTTP load either way."
  default     = null

  validation {
    condition     = var.http_reserved_concurrency == null ? true : var.http_reserved_concurrency >= 1
    error_message = "http_reserved_concurrency must be null (no reservation) or at least 1."
  }
}

variable "jobs_reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions of the jobs function; null reserves nothing (see http_reserved_concurrency for the account quota this needs)."
  default     = null

  validation {
    condition     = var.jobs_reserved_concurrency == null ? true : var.jobs_reserved_concurrency >= 2
    error_message = "jobs_reserved_concurrency must be null or at least 2 (the event source mapping's maximum concurrency is at least 2)."
  }
}

variable "jobs_maximum_concurrency" {
  type        = number
  description = "Most concurrent jobs invocations the SQS event source mapping starts (2-1000): bounds the load on TMDB and DynamoDB without reserving account concurrency."
  default     = 5

  validation {
    condition     = var.jobs_maximum_concurrency >= 2 && var.jobs_maximum_concurrency <= 1000
    error_message = "jobs_maximum_concurrency must be 2-1000 (the limits of an SQS event source mapping's maximum concurrency)."
  }
}

variable "jobs_batch_size" {
  type        = number
  description = "Messages per batch (1-10; jobs run concurrently within a batch)."
  default     = 10

  validation {
    condition     = var.jobs_batch_size >= 1 && var.jobs_batch_size <= 10
    error_message = "jobs_batch_size must be 1-10 (no batching window is configured)."
  }
}

variable "tmdb_base_url" {
  type        = string
  description = "Base URL of the TMDB API."
  default     = "https://api.themoviedb.org"
}

variable "tmdb_api_key" {
  type        = string
  description = "TMDB API key (the value of the MovieApp's tmdb Secret). Stored encrypted with the module's KMS key in the functions' configuration, and in the Terraform state."
  sensitive   = true
  nullable    = false
}

variable "token_signing_key" {
  type        = string
  description = "Key that signs login tokens (at least 32 bytes; the HTTP function only). Use the Deployment's key so tokens work on both runtimes."
  sensitive   = true
  default     = null
}

variable "environment" {
  type        = map(string)
  description = "Extra environment of both functions (for example LOG_FORMAT = \"text\", or API_WORKER_LAMBDA_ARGS = \"--argon2-memory-kib=12288 --argon2-iterations=3\")."
  default     = {}

  validation {
    condition     = length(setintersection(keys(var.environment), ["MOVIEAPP_TRUSTED_PROXIES", "MOVIEAPP_FORWARDED_HEADER"])) == 0
    error_message = "environment must not set MOVIEAPP_TRUSTED_PROXIES or MOVIEAPP_FORWARDED_HEADER: on Lambda the client is API Gateway's sourceIp and no forwarded header is believed (docs/security.md)."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep the functions' logs."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
