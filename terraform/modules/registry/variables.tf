variable "name" {
  type        = string
  description = "Environment prefix of the registry's account-wide names (for example \"movieapp-prod\"): repositories <name>/<repository> and the key alias alias/<name>-ecr."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "repositories" {
  type        = list(string)
  description = "Repositories, each created as <name>/<repository>. Fixed by the project: the images movieapp-operator and api-worker, and the operator's Helm chart (an OCI artifact; helm push oci://<registry>/<name>/charts)."
  default     = ["movieapp-operator", "api-worker", "charts/movieapp-operator"]
}

variable "channel_tag" {
  type        = string
  description = "The one mutable tag of each repository (every other tag is immutable): the tag a MovieApp follows when it names none (the CRD's default, latest). Promoting a build to it rolls it out to those MovieApps at the operator's next resync."
  default     = "latest"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.channel_tag))
    error_message = "channel_tag must be one literal image tag (no wildcard): only that tag may move."
  }
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
