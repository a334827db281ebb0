variable "name" {
  type        = string
  description = "Prefix of the IAM role names (for example \"movieapp-prod\")."
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the cluster's IAM OIDC provider (IRSA)."
}

variable "oidc_issuer" {
  type        = string
  description = "OIDC issuer host and path without https:// (the prefix of the IRSA condition keys)."
}

variable "resource_name_prefix" {
  type        = string
  description = "Physical-name prefix of every AWS resource the operator creates. Fixed by the operator: movieapp-."
  default     = "movieapp-"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]+$", var.resource_name_prefix))
    error_message = "resource_name_prefix must be a plain name prefix without wildcards."
  }
}

variable "operator_namespace" {
  type        = string
  description = "Kubernetes namespace of the operator's ServiceAccount."
  default     = "movieapp-system"
}

variable "operator_service_account" {
  type        = string
  description = "Name of the operator's Kubernetes ServiceAccount."
  default     = "movieapp-operator"
}

variable "ecr_repository_arns" {
  type        = list(string)
  description = "ECR repositories whose images the operator resolves to digests (read only)."
}

variable "events_queue_arns" {
  type        = list(string)
  description = "The SQS queue of AWS change events the operator reads (run --events-queue-url); empty: no statement for it."
  default     = []
}

variable "cluster_id" {
  type        = string
  description = "This cluster's id, the operator's --cluster-id (chart value operator.clusterId; the EKS cluster's name): the operator may change, delete, tag and untag only resources tagged movieapp.io/cluster with it, and create and claim resources only with it."
  default     = "default"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._:/=+@-]{0,127}$", var.cluster_id))
    error_message = "cluster_id must be 1-128 of A-Z a-z 0-9 . _ : / = + @ -, starting with a letter or digit (the operator's --cluster-id)."
  }
}

variable "require_ownership_tags" {
  type        = bool
  description = "Condition the operator's creates, tag writes, changes and deletes on its ownership tags (aws:RequestTag, aws:ResourceTag, aws:TagKeys with app.kubernetes.io/managed-by and movieapp.io/cluster = cluster_id) for DynamoDB, SQS and SNS, and the api-worker's data access on its MovieApp's tags. Turn off only if the account cannot use tag-based authorization for these services."
  default     = true
}

variable "movieapps" {
  type = map(object({
    namespace = string
    name      = string
  }))
  description = "MovieApps that get an api-worker IRSA role, keyed by a short id. The role trusts the ServiceAccount named after the MovieApp in its namespace."
  default     = {}
}

variable "load_balancer_controller" {
  type = object({
    namespace       = string
    service_account = string
  })
  description = "ServiceAccount of the AWS Load Balancer Controller, which registers api-worker pods in the edge target group (TargetGroupBinding)."
  default = {
    namespace       = "kube-system"
    service_account = "aws-load-balancer-controller"
  }
}

variable "target_group_arns" {
  type        = list(string)
  description = "Target groups the Load Balancer Controller may register pods in."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
