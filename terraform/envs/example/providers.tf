provider "aws" {
  region = var.region

  # Every taggable resource gets these; modules add var.tags on top.
  default_tags {
    tags = merge(var.tags, {
      "app.kubernetes.io/part-of" = "movieapp"
      "movieapp.io/environment"   = var.environment
      "movieapp.io/terraform"     = "terraform/envs/example"
    })
  }
}
