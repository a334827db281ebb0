data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

# The current ECS-optimised Amazon Linux 2023 AMI, published by AWS in SSM.
data "aws_ssm_parameter" "ecs_ami" {
  name = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  log_group  = "/aws/ecs/${var.name}"
  tasks      = { for k, t in var.side_tasks : k => t }

  # What every side task needs before its schedule may run: the api-worker's
  # connection settings (they exist once the MovieApp is Ready) and a pushed
  # image. Until then the schedules exist but are DISABLED, so no instance is
  # started every 6 hours to run a task that can only fail.
  required_environment = ["MOVIEAPP_USERS_TABLE", "MOVIEAPP_MOVIES_TABLE", "MOVIEAPP_WATCHLISTS_TABLE", "MOVIEAPP_JOBS_QUEUE_URL", "MOVIEAPP_NOTIFICATIONS_TOPIC_ARN"]
  missing_environment  = setsubtract(local.required_environment, keys(var.environment))
  missing_secret       = contains(keys(merge(var.environment, var.secrets)), "TMDB_API_KEY") ? [] : ["TMDB_API_KEY"]
  image                = "${var.api_worker_repository_url}:${coalesce(var.api_worker_image_tag, "not-pushed-yet")}"
}

# --- KMS for logs, ECS Exec and the schedules ------------------------------

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:KMS key policies must use Resource "*" (the key itself); access is limited to this account and the Logs service
  # checkov:skip=CKV_AWS_111:KMS key policies must use Resource "*" (the key itself); access is limited to this account and the Logs service
  # checkov:skip=CKV_AWS_356:KMS key policies must use Resource "*" (the key itself); access is limited to this account and the Logs service
  statement {
    sid = "AccountAdministers"
    # tflint-ignore: movieapp_aws_iam_policy_service_wildcard # the AWS default key policy: delegates the key to the account's IAM policies
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsUse"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group}*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name} ECS side-services logs and schedules"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "tasks" {
  name              = "${local.log_group}/tasks"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "exec" {
  name              = "${local.log_group}/exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = var.tags
}

# --- Cluster ----------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.this.arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }

  tags = var.tags
}

# --- EC2 capacity: an Auto Scaling group on the ECS-optimised AMI ------------

data "aws_iam_policy_document" "instance_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = "${var.name}-ecs-instance"
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "instance" {
  for_each = toset([
    "service-role/AmazonEC2ContainerServiceforEC2Role",
    "AmazonSSMManagedInstanceCore",
  ])

  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name}-ecs-instance"
  role = aws_iam_role.instance.name

  tags = var.tags
}

resource "aws_security_group" "instances" {
  name        = "${var.name}-ecs-instances"
  description = "ECS container instances: outbound HTTPS only (ECS, ECR, logs)"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-ecs-instances" })
}

resource "aws_vpc_security_group_egress_rule" "instances_https" {
  security_group_id = aws_security_group.instances.id
  description       = "HTTPS to AWS APIs (VPC endpoints or NAT)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

resource "aws_launch_template" "instances" {
  name_prefix            = "${var.name}-"
  description            = "${var.name} ECS container instances"
  image_id               = data.aws_ssm_parameter.ecs_ami.insecure_value
  instance_type          = var.instance_type
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.instances.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # Tasks use their task role; IMDS stays out of their reach.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 30
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  user_data = base64encode(<<-EOT
    #!/bin/bash
    cat >> /etc/ecs/ecs.config <<CONFIG
    ECS_CLUSTER=${var.name}
    ECS_AWSVPC_BLOCK_IMDS=true
    ECS_ENABLE_TASK_IAM_ROLE=true
    CONFIG
  EOT
  )

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-ecs" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-ecs" })
  }

  tags = var.tags
}

# The container instances' type must be offered in every zone of subnet_ids.
data "aws_ec2_instance_type_offerings" "instances" {
  location_type = "availability-zone-id"

  filter {
    name   = "instance-type"
    values = [var.instance_type]
  }

  filter {
    name   = "location"
    values = var.availability_zone_ids
  }

  lifecycle {
    postcondition {
      condition     = length(setsubtract(var.availability_zone_ids, self.locations)) == 0
      error_message = "${var.instance_type} is not offered in ${join(", ", setsubtract(var.availability_zone_ids, self.locations))}: choose another instance_type or other zone IDs."
    }
  }
}

resource "aws_autoscaling_group" "instances" {
  name_prefix           = "${var.name}-"
  vpc_zone_identifier   = var.subnet_ids
  min_size              = var.min_instances
  max_size              = var.max_instances
  protect_from_scale_in = true
  health_check_type     = "EC2"

  launch_template {
    id      = aws_launch_template.instances.id
    version = aws_launch_template.instances.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
  }

  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = var.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    ignore_changes = [desired_capacity]
  }

  depends_on = [data.aws_ec2_instance_type_offerings.instances]
}

# Creating the ECS cluster makes ECS create its service-linked role
# (AWSServiceRoleForECS) in an account that never used ECS; the capacity
# provider needs that role, so it waits for the cluster.
resource "aws_ecs_capacity_provider" "ec2" {
  name = "${var.name}-ec2"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.instances.arn
    managed_termination_protection = "ENABLED"
    managed_draining               = "ENABLED"

    managed_scaling {
      status          = "ENABLED"
      target_capacity = 100
    }
  }

  tags = var.tags

  depends_on = [aws_ecs_cluster.this]
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = [aws_ecs_capacity_provider.ec2.name]

  default_capacity_provider_strategy {
    capacity_provider = aws_ecs_capacity_provider.ec2.name
    weight            = 1
  }
}

# --- Task roles and definitions -------------------------------------------

data "aws_iam_policy_document" "tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  count = length(var.secrets) > 0 ? 1 : 0

  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = distinct(values(var.secrets))
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count = length(var.secrets) > 0 ? 1 : 0

  name   = "read-task-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets[0].json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.tasks_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "api-worker"
  role   = aws_iam_role.task.id
  policy = var.task_policy_json
}

resource "aws_security_group" "tasks" {
  # checkov:skip=CKV2_AWS_5:Attached to every task ENI by the EventBridge Scheduler target (aws_scheduler_schedule.side network_configuration), which checkov's graph does not follow
  name        = "${var.name}-tasks"
  description = "Side tasks: no inbound; outbound HTTPS (AWS APIs, TMDB)"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-tasks" })
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs and TMDB"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

resource "aws_ecs_task_definition" "side" {
  for_each = local.tasks

  family                   = "${var.name}-${each.key}"
  network_mode             = "awsvpc"
  requires_compatibilities = ["EC2"]
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  container_definitions = jsonencode([{
    name                   = each.key
    image                  = local.image
    essential              = true
    entryPoint             = ["api-worker"]
    command                = each.value.command
    readonlyRootFilesystem = true
    privileged             = false
    environment = [for k, v in merge(var.environment, each.value.environment) : {
      name  = k
      value = v
    }]
    secrets = [for k, arn in var.secrets : {
      name      = k
      valueFrom = arn
    }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.tasks.name
        awslogs-region        = local.region
        awslogs-stream-prefix = each.key
      }
    }
  }])

  tags = var.tags
}

# --- EventBridge Scheduler runs each task on its schedule ------------------

resource "aws_scheduler_schedule_group" "this" {
  name = var.name

  tags = var.tags
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "RunSideTasks"
    actions   = ["ecs:RunTask"]
    resources = [for k, _ in local.tasks : "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${var.name}-${k}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  statement {
    sid       = "TagTasks"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${var.name}/*"]
  }

  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.task.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "DecryptSchedules"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "run-side-tasks"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "side" {
  for_each = local.tasks

  name                = each.key
  group_name          = aws_scheduler_schedule_group.this.name
  description         = "Runs api-worker ${join(" ", each.value.command)} on ${var.name}"
  schedule_expression = each.value.schedule_expression
  state               = var.schedules_enabled && each.value.enabled ? "ENABLED" : "DISABLED"
  kms_key_arn         = aws_kms_key.this.arn

  flexible_time_window {
    mode                      = "FLEXIBLE"
    maximum_window_in_minutes = 15
  }

  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn     = aws_ecs_task_definition.side[each.key].arn
      task_count              = 1
      enable_ecs_managed_tags = true
      propagate_tags          = "TASK_DEFINITION"

      capacity_provider_strategy {
        capacity_provider = aws_ecs_capacity_provider.ec2.name
        weight            = 1
      }

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.tasks.id]
        assign_public_ip = false
      }
    }

    retry_policy {
      maximum_retry_attempts       = 2
      maximum_event_age_in_seconds = 3600
    }
  }

  depends_on = [aws_iam_role_policy.scheduler, aws_ecs_cluster_capacity_providers.this]

  lifecycle {
    precondition {
      condition     = !var.schedules_enabled || var.api_worker_image_tag != null
      error_message = "schedules_enabled needs api_worker_image_tag: push the api-worker image first and name its tag."
    }

    precondition {
      condition     = !var.schedules_enabled || length(local.missing_environment) + length(local.missing_secret) == 0
      error_message = "schedules_enabled needs the MovieApp's connection settings in environment and the TMDB key in secrets; missing: ${join(", ", concat(tolist(local.missing_environment), local.missing_secret))}. They are known once the MovieApp is Ready (docs/terraform.md, the side-services step)."
    }
  }
}
