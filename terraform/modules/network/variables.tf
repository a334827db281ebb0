variable "name" {
  type        = string
  description = "Name prefix for every resource of the network (for example \"movieapp-prod\")."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "cidr_block" {
  type        = string
  description = "IPv4 CIDR of the VPC. A /16 leaves room for pod IPs (the VPC CNI gives pods VPC addresses)."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.cidr_block)) && tonumber(split("/", var.cidr_block)[1]) <= 18
    error_message = "cidr_block must be a valid IPv4 CIDR of /18 or larger."
  }
}

variable "availability_zone_ids" {
  type        = list(string)
  description = "Availability zone IDs (for example use1-az1, not us-east-1a: names map to different zones in each account) to spread the subnets over (at least 2), pinned so the network never grows or moves when AWS adds a zone."

  validation {
    condition     = length(var.availability_zone_ids) >= 2 && length(var.availability_zone_ids) <= 6 && length(distinct(var.availability_zone_ids)) == length(var.availability_zone_ids)
    error_message = "availability_zone_ids must list 2 to 6 distinct zone IDs."
  }

  validation {
    condition     = alltrue([for z in var.availability_zone_ids : can(regex("^[a-z]{2,5}[0-9]+-az[0-9]+$", z))])
    error_message = "availability_zone_ids takes zone IDs such as use1-az1 (aws ec2 describe-availability-zones --query 'AvailabilityZones[].[ZoneName,ZoneId]'), not zone names such as us-east-1a."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "Use one NAT gateway for all AZs (cheaper, not AZ-resilient) instead of one per AZ."
  default     = false
}

variable "interface_endpoints" {
  type        = list(string)
  description = "AWS services reached through interface VPC endpoints (service name suffix after com.amazonaws.<region>.). DynamoDB and S3 always get gateway endpoints."
  default     = ["sqs", "sns", "ecr.api", "ecr.dkr", "sts", "logs", "ecs", "ecs-agent", "ecs-telemetry", "elasticloadbalancing", "ec2"]
}

variable "cluster_name" {
  type        = string
  description = "EKS cluster name the subnets are tagged for (kubernetes.io/cluster/<name>), so load balancers find them."
}

variable "flow_log_retention_days" {
  type        = number
  description = "Days to keep VPC flow logs in CloudWatch Logs."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
