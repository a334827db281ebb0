variable "namespace" {
  type        = string
  description = "Namespace of the MovieApp."
}

variable "name" {
  type        = string
  description = "Name of the MovieApp."
}
