variable "name" {
  type        = string
  description = "Name of the EKS cluster (also the prefix of its IAM roles, keys and log groups)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must be 2-39 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version (major.minor)."
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.34."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC the cluster runs in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets (at least two AZs) for the control plane ENIs and the nodes."

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids needs subnets in at least two availability zones."
  }
}

variable "availability_zone_ids" {
  type        = list(string)
  description = "Availability zone IDs of subnet_ids (network module output availability_zone_ids); the plan fails when a zone offers none of node_instance_types."
}

variable "endpoint_public_access" {
  type        = bool
  description = "Expose the Kubernetes API endpoint publicly (restricted to endpoint_public_access_cidrs). The private endpoint is always on."
  default     = false
}

variable "endpoint_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the public API endpoint (for example the office or CI egress). Never 0.0.0.0/0."
  default     = []

  validation {
    condition     = !contains(var.endpoint_public_access_cidrs, "0.0.0.0/0")
    error_message = "endpoint_public_access_cidrs must not contain 0.0.0.0/0; list the networks that administer the cluster."
  }
}

variable "cluster_admin_principal_arns" {
  type        = list(string)
  description = "IAM role/user ARNs given cluster-admin through EKS access entries (whoever runs helm and kubectl)."
  default     = []
}

variable "node_instance_types" {
  type        = list(string)
  description = "EC2 instance types of the managed node group, in order of preference."
  default     = ["m7i.large", "m6i.large"]
}

variable "node_capacity_type" {
  type        = string
  description = "ON_DEMAND or SPOT capacity for the node group."
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.node_capacity_type)
    error_message = "node_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "node_min_size" {
  type        = number
  description = "Minimum number of nodes."
  default     = 2
}

variable "node_desired_size" {
  type        = number
  description = "Initial number of nodes (later changes by the autoscaler are ignored)."
  default     = 2
}

variable "node_max_size" {
  type        = number
  description = "Maximum number of nodes."
  default     = 6
}

variable "node_disk_size_gib" {
  type        = number
  description = "Root volume size of each node, GiB (gp3, encrypted)."
  default     = 50
}

variable "log_retention_days" {
  type        = number
  description = "Days to keep the control plane logs."
  default     = 365
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
