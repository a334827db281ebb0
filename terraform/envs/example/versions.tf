terraform {
  # S3 native state locking (use_lockfile) needs Terraform 1.10+.
  required_version = "~> 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.8" # 6.8: ECR tag-mutability exclusion filters
    }
  }

  # S3 state with locking. Settings come from backend.hcl (see
  # backend.hcl.example): terraform init -backend-config=backend.hcl
  backend "s3" {}
}
