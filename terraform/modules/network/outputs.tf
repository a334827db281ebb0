output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "availability_zone_ids" {
  description = "Availability zone IDs the subnets are in, in the order given."
  value       = local.azs
}

output "private_subnet_ids_by_zone_id" {
  description = "Private subnet ID per availability zone ID (the edge module leaves out zones where HTTP API VPC links are not supported)."
  value       = { for az in local.azs : az => aws_subnet.private[az].id }
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (NAT gateways only; nothing else is public)."
  value       = [for az in local.azs : aws_subnet.public[az].id]
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (EKS nodes and pods, ECS tasks, internal load balancer, VPC link)."
  value       = [for az in local.azs : aws_subnet.private[az].id]
}

output "vpc_endpoint_security_group_id" {
  description = "Security group of the interface VPC endpoints."
  value       = aws_security_group.endpoints.id
}
