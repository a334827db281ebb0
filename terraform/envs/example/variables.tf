variable "region" {
  type        = string
  description = "AWS region of the whole stack (also the operator's --default-region)."
  default     = "us-east-1"
}

variable "environment" {
  type        = string
  description = "Environment name, used in resource names (movieapp-<environment>)."
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.environment))
    error_message = "environment must be 2-12 lowercase letters or digits, starting with a letter."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource (cost centre, owner, ...)."
  default     = {}
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR of the VPC."
  default     = "10.40.0.0/16"
}

variable "availability_zone_ids" {
  type        = list(string)
  description = "Availability zone IDs of the region to use (at least 2), for example use1-az1: IDs, not names, because each account maps zone names to different physical zones. The default avoids use1-az3, which has no HTTP API VPC links; outside us-east-1, set the IDs of your region (aws ec2 describe-availability-zones)."
  default     = ["use1-az1", "use1-az2", "use1-az4"]
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway instead of one per AZ (cheaper, less resilient)."
  default     = false
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version."
  default     = "1.34"
}

variable "cluster_endpoint_public_access" {
  type        = bool
  description = "Open the Kubernetes API's public endpoint to cluster_endpoint_public_access_cidrs. Off by default: reach the private endpoint through a VPN, bastion or SSM session."
  default     = false
}

variable "cluster_endpoint_public_access_cidrs" {
  type        = list(string)
  description = "Networks allowed to reach the Kubernetes API's public endpoint when it is on (your office/VPN/CI egress)."
  default     = []
}

variable "cluster_admin_principal_arns" {
  type        = list(string)
  description = "IAM roles/users that get cluster-admin through EKS access entries (whoever runs helm and kubectl). The identity running Terraform gets no implicit access."

  validation {
    condition     = length(var.cluster_admin_principal_arns) > 0
    error_message = "List at least one IAM principal, or nobody can use the cluster."
  }
}

variable "node_instance_types" {
  type        = list(string)
  description = "Instance types of the EKS node group."
  default     = ["m7i.large", "m6i.large"]
}

variable "node_min_size" {
  type        = number
  description = "Minimum EKS nodes."
  default     = 2
}

variable "node_max_size" {
  type        = number
  description = "Maximum EKS nodes."
  default     = 6
}

variable "movieapps" {
  type = map(object({
    namespace = string
    name      = string
  }))
  description = "MovieApps to create api-worker IRSA roles for, keyed by a short id. The first step's example is the one in examples/movieapp.yaml."
  default = {
    netflix-clone = {
      namespace = "movies"
      name      = "netflix-clone"
    }
  }
}

variable "edge_movieapp" {
  type        = string
  description = "Key in var.movieapps of the MovieApp served at domain_name and used by the ECS side tasks."
  default     = "netflix-clone"
}

variable "domain_name" {
  type        = string
  description = "Custom domain of the API, in hosted_zone_id (for example movies.example.com)."
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 public hosted zone ID holding domain_name."
}

variable "api_worker_image_tag" {
  type        = string
  description = "api-worker image version tag the ECS side tasks run; null until the image is pushed (side_tasks_enabled needs it)."
  default     = null
}

variable "aws_events_create_trail" {
  type        = bool
  description = "Create the CloudTrail trail the AWS change events need (module aws-events, docs/aws-events.md). Set false when the account already has a trail logging management events in this region, such as an organization trail: a second trail's management events are charged."
  default     = true
}

variable "aws_events_external_names" {
  type        = list(string)
  description = "Names of AWS resources that MovieApps name explicitly outside movieapp-* (spec.database.tableNames, spec.queue.name, ...): the AWS change events cover them too."
  default     = []
}

variable "side_tasks_enabled" {
  type        = bool
  description = "Run the ECS side tasks (sync-popular) on their schedules. Leave off on the first apply; turn on once the image is pushed (api_worker_image_tag) and side_tasks_environment/side_tasks_secrets hold the MovieApp's settings; the plan names what is missing."
  default     = false
}

variable "side_tasks_environment" {
  type        = map(string)
  description = "Environment of the ECS side tasks: the MovieApp's connection settings from its status (table names, queue URL, topic ARN); set after the MovieApp is Ready."
  default     = {}
}

variable "side_tasks_secrets" {
  type        = map(string)
  description = "Secrets Manager ARNs for the side tasks' secret environment, for example { TMDB_API_KEY = \"arn:aws:secretsmanager:...\" }."
  default     = {}
}

variable "api_dualstack" {
  type        = bool
  description = "Serve the API's custom domain on IPv6 too (dual-stack) and publish its AAAA record; off: IPv4 only, A record only."
  default     = false
}

variable "api_throttling_rate_limit" {
  type        = number
  description = "API Gateway steady-state request rate limit (requests per second)."
  default     = 100
}

variable "api_throttling_burst_limit" {
  type        = number
  description = "API Gateway burst limit."
  default     = 200
}

variable "lambda" {
  type = object({
    enabled      = optional(bool, false)
    package_file = optional(string, "")
    http         = optional(bool, true)
    jobs         = optional(bool, true)
    route_keys   = optional(list(string), ["ANY /{proxy+}", "ANY /"])
  })
  description = "Optional: the api-worker of edge_movieapp on AWS Lambda too (docs/lambda.md). package_file is the zip of make lambda-package; http routes route_keys of the edge API to the HTTP function instead of the VPC link; jobs consumes the MovieApp's jobs queue. Apply after the MovieApp is Ready."
  default     = {}

  validation {
    condition     = !var.lambda.enabled || var.lambda.package_file != ""
    error_message = "lambda.package_file must name the Lambda zip (make lambda-package) when lambda.enabled is true."
  }
}

variable "lambda_tmdb_api_key" {
  type        = string
  description = "TMDB API key for the Lambda functions (the value of the MovieApp's tmdb Secret); needed when lambda.enabled. Kept encrypted in the functions' configuration and in the state."
  sensitive   = true
  default     = null
}

variable "lambda_token_signing_key" {
  type        = string
  description = "Login token signing key for the Lambda HTTP function: the MovieApp's own (so tokens work on both runtimes); needed when lambda.http."
  sensitive   = true
  default     = null
}
