variable "name" {
  type        = string
  description = "Prefix of the edge resources (for example \"movieapp-prod\")."

  validation {
    condition     = length(var.name) <= 24
    error_message = "name must be at most 24 characters (load balancer and target group names are limited to 32)."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cluster."
}

variable "subnet_ids_by_zone_id" {
  type        = map(string)
  description = "Private subnet per availability zone ID (network module output private_subnet_ids_by_zone_id), for the internal load balancer and the VPC link."
}

variable "vpc_link_unsupported_zone_ids" {
  type        = list(string)
  description = "Availability zone IDs where API Gateway HTTP API VPC links cannot be created (AWS API Gateway developer guide, \"Availability by Region\" of VPC links for HTTP APIs). The VPC link leaves their subnets out; extend the list for your region."
  default     = ["use1-az3"]
}

variable "node_security_group_id" {
  type        = string
  description = "Security group of the EKS nodes; the load balancer is let in on app_port (pods use the node's security groups with the VPC CNI)."
}

variable "app_port" {
  type        = number
  description = "Container port of the api-worker pods (MovieApp spec.worker.port)."
  default     = 8080
}

variable "health_check_path" {
  type        = string
  description = "HTTP path the load balancer probes on the pods' public port: /readyz (ready to serve) or /healthz (up)."
  default     = "/readyz"

  validation {
    condition     = contains(["/readyz", "/healthz"], var.health_check_path)
    error_message = "health_check_path must be /readyz or /healthz: the public port serves no other probe (the admin listener's /metrics and detailed /readyz are not reachable from the load balancer)."
  }
}

variable "domain_name" {
  type        = string
  description = "Custom domain of the API (for example movies.example.com)."
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 public hosted zone that holds domain_name (created outside this stack, with the domain's registrar pointing at it)."
}

variable "dualstack" {
  type        = bool
  description = "Serve the custom domain on IPv4 and IPv6 (API Gateway ip_address_type dualstack) and publish an AAAA alias beside the A alias. Off: IPv4 only, no AAAA record."
  default     = false
}

variable "throttling_burst_limit" {
  type        = number
  description = "API Gateway burst limit (requests) for the default route."
  default     = 200
}

variable "throttling_rate_limit" {
  type        = number
  description = "API Gateway steady-state limit (requests per second) for the default route."
  default     = 100
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the load balancer against deletion."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep the API access logs."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
