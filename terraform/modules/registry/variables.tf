variable "repositories" {
  type        = list(string)
  description = "ECR repository names. Fixed by the project: movieapp-operator and api-worker."
  default     = ["movieapp-operator", "api-worker"]
}

variable "untagged_image_expiry_days" {
  type        = number
  description = "Days after which untagged images are deleted."
  default     = 7
}

variable "max_tagged_images" {
  type        = number
  description = "Number of most recent tagged images kept per repository; older ones are deleted."
  default     = 50
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
