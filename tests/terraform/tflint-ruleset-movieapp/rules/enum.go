package rules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/terraform-linters/tflint-plugin-sdk/hclext"
	"github.com/terraform-linters/tflint-plugin-sdk/tflint"
)

// enumCheck is one attribute whose value must be one of a fixed set of
// values accepted by the AWS API. Block is an optional nested block.
type enumCheck struct {
	Resource  string
	Block     string
	Attribute string
	List      bool
	Allowed   []string
}

// enumChecks lists the AWS API enumerations used by this project's
// resources. Values come from the AWS API references.
var enumChecks = []enumCheck{
	{Resource: "aws_ecr_repository", Attribute: "image_tag_mutability", Allowed: []string{"MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"}},
	{Resource: "aws_ecr_repository", Block: "image_tag_mutability_exclusion_filter", Attribute: "filter_type", Allowed: []string{"WILDCARD"}},
	{Resource: "aws_ecr_repository", Block: "encryption_configuration", Attribute: "encryption_type", Allowed: []string{"AES256", "KMS", "KMS_DSSE"}},
	{Resource: "aws_cloudwatch_log_group", Attribute: "retention_in_days", Allowed: []string{"0", "1", "3", "5", "7", "14", "30", "60", "90", "120", "150", "180", "365", "400", "545", "731", "1096", "1827", "2192", "2557", "2922", "3288", "3653"}},
	{Resource: "aws_apigatewayv2_api", Attribute: "protocol_type", Allowed: []string{"HTTP", "WEBSOCKET"}},
	{Resource: "aws_apigatewayv2_integration", Attribute: "integration_type", Allowed: []string{"AWS", "AWS_PROXY", "HTTP", "HTTP_PROXY", "MOCK"}},
	{Resource: "aws_apigatewayv2_integration", Attribute: "connection_type", Allowed: []string{"INTERNET", "VPC_LINK"}},
	{Resource: "aws_apigatewayv2_domain_name", Block: "domain_name_configuration", Attribute: "endpoint_type", Allowed: []string{"REGIONAL"}},
	{Resource: "aws_apigatewayv2_domain_name", Block: "domain_name_configuration", Attribute: "security_policy", Allowed: []string{"TLS_1_2"}},
	{Resource: "aws_apigatewayv2_domain_name", Block: "domain_name_configuration", Attribute: "ip_address_type", Allowed: []string{"ipv4", "dualstack"}},
	{Resource: "aws_acm_certificate", Attribute: "validation_method", Allowed: []string{"DNS", "EMAIL", "NONE"}},
	{Resource: "aws_route53_record", Attribute: "type", Allowed: []string{"A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV", "SSHFP", "SVCB", "TLSA", "TXT"}},
	{Resource: "aws_eks_node_group", Attribute: "capacity_type", Allowed: []string{"ON_DEMAND", "SPOT", "CAPACITY_BLOCK"}},
	{Resource: "aws_eks_node_group", Attribute: "ami_type", Allowed: []string{"AL2_x86_64", "AL2_x86_64_GPU", "AL2_ARM_64", "CUSTOM", "BOTTLEROCKET_ARM_64", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64_FIPS", "BOTTLEROCKET_x86_64_FIPS", "BOTTLEROCKET_ARM_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "WINDOWS_CORE_2019_x86_64", "WINDOWS_FULL_2019_x86_64", "WINDOWS_CORE_2022_x86_64", "WINDOWS_FULL_2022_x86_64", "AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "AL2023_x86_64_NEURON", "AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA"}},
	{Resource: "aws_eks_cluster", Attribute: "enabled_cluster_log_types", List: true, Allowed: []string{"api", "audit", "authenticator", "controllerManager", "scheduler"}},
	{Resource: "aws_eks_cluster", Block: "access_config", Attribute: "authentication_mode", Allowed: []string{"API", "API_AND_CONFIG_MAP", "CONFIG_MAP"}},
	{Resource: "aws_lb", Attribute: "load_balancer_type", Allowed: []string{"application", "network", "gateway"}},
	{Resource: "aws_lb", Attribute: "ip_address_type", Allowed: []string{"ipv4", "dualstack", "dualstack-without-public-ipv4"}},
	{Resource: "aws_lb_target_group", Attribute: "target_type", Allowed: []string{"instance", "ip", "lambda", "alb"}},
	{Resource: "aws_lb_target_group", Attribute: "protocol", Allowed: []string{"GENEVE", "HTTP", "HTTPS", "TCP", "TCP_UDP", "TLS", "UDP", "QUIC", "TCP_QUIC"}},
	{Resource: "aws_lb_listener", Attribute: "protocol", Allowed: []string{"GENEVE", "HTTP", "HTTPS", "TCP", "TCP_UDP", "TLS", "UDP", "QUIC", "TCP_QUIC"}},
	{Resource: "aws_vpc_endpoint", Attribute: "vpc_endpoint_type", Allowed: []string{"Gateway", "GatewayLoadBalancer", "Interface", "Resource", "ServiceNetwork"}},
	{Resource: "aws_flow_log", Attribute: "traffic_type", Allowed: []string{"ACCEPT", "REJECT", "ALL"}},
	{Resource: "aws_flow_log", Attribute: "log_destination_type", Allowed: []string{"cloud-watch-logs", "s3", "kinesis-data-firehose"}},
	{Resource: "aws_ecs_task_definition", Attribute: "network_mode", Allowed: []string{"bridge", "host", "awsvpc", "none"}},
	{Resource: "aws_ecs_task_definition", Attribute: "requires_compatibilities", List: true, Allowed: []string{"EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"}},
	{Resource: "aws_ecs_capacity_provider", Block: "auto_scaling_group_provider", Attribute: "managed_termination_protection", Allowed: []string{"ENABLED", "DISABLED"}},
	{Resource: "aws_ecs_capacity_provider", Block: "auto_scaling_group_provider", Attribute: "managed_draining", Allowed: []string{"ENABLED", "DISABLED"}},
	{Resource: "aws_scheduler_schedule", Attribute: "state", Allowed: []string{"ENABLED", "DISABLED"}},
	{Resource: "aws_scheduler_schedule", Block: "flexible_time_window", Attribute: "mode", Allowed: []string{"OFF", "FLEXIBLE"}},
	{Resource: "aws_kms_key", Attribute: "key_usage", Allowed: []string{"ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"}},
	{Resource: "aws_kms_key", Attribute: "customer_master_key_spec", Allowed: []string{"SYMMETRIC_DEFAULT", "RSA_2048", "RSA_3072", "RSA_4096", "HMAC_256", "HMAC_384", "HMAC_512", "HMAC_224", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87"}},
	{Resource: "aws_launch_template", Block: "metadata_options", Attribute: "http_tokens", Allowed: []string{"optional", "required"}},
	{Resource: "aws_launch_template", Block: "metadata_options", Attribute: "http_endpoint", Allowed: []string{"enabled", "disabled"}},
	{Resource: "aws_lambda_function", Attribute: "architectures", List: true, Allowed: []string{"x86_64", "arm64"}},
	{Resource: "aws_lambda_function", Attribute: "package_type", Allowed: []string{"Zip", "Image"}},
	{Resource: "aws_lambda_function", Block: "tracing_config", Attribute: "mode", Allowed: []string{"Active", "PassThrough"}},
	{Resource: "aws_lambda_function", Block: "logging_config", Attribute: "log_format", Allowed: []string{"JSON", "Text"}},
	{Resource: "aws_lambda_function", Block: "logging_config", Attribute: "application_log_level", Allowed: []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}},
	{Resource: "aws_lambda_function", Block: "logging_config", Attribute: "system_log_level", Allowed: []string{"DEBUG", "INFO", "WARN"}},
	{Resource: "aws_lambda_event_source_mapping", Attribute: "function_response_types", List: true, Allowed: []string{"ReportBatchItemFailures"}},
	{Resource: "aws_apigatewayv2_integration", Attribute: "payload_format_version", Allowed: []string{"1.0", "2.0"}},
}

// EnumRule checks attributes against the values the AWS API accepts, so a
// typo fails in lint instead of at `terraform apply`.
type EnumRule struct {
	tflint.DefaultRule
}

// Name returns the rule name.
func (r *EnumRule) Name() string { return "movieapp_aws_invalid_enum_value" }

// Enabled returns whether the rule is enabled by default.
func (r *EnumRule) Enabled() bool { return true }

// Severity returns the rule severity.
func (r *EnumRule) Severity() tflint.Severity { return tflint.ERROR }

// Link returns the rule reference link.
func (r *EnumRule) Link() string { return docLink }

// Check runs the rule.
func (r *EnumRule) Check(runner tflint.Runner) error {
	byResource := map[string][]enumCheck{}
	for _, c := range enumChecks {
		byResource[c.Resource] = append(byResource[c.Resource], c)
	}
	resources := make([]string, 0, len(byResource))
	for name := range byResource {
		resources = append(resources, name)
	}
	sort.Strings(resources)

	for _, resource := range resources {
		checks := byResource[resource]
		schema := &hclext.BodySchema{}
		nested := map[string]*hclext.BodySchema{}
		for _, c := range checks {
			if c.Block == "" {
				schema.Attributes = append(schema.Attributes, hclext.AttributeSchema{Name: c.Attribute})
				continue
			}
			if nested[c.Block] == nil {
				nested[c.Block] = &hclext.BodySchema{}
				schema.Blocks = append(schema.Blocks, hclext.BlockSchema{Type: c.Block, Body: nested[c.Block]})
			}
			nested[c.Block].Attributes = append(nested[c.Block].Attributes, hclext.AttributeSchema{Name: c.Attribute})
		}
		content, err := runner.GetResourceContent(resource, schema, nil)
		if err != nil {
			return err
		}
		for _, res := range content.Blocks {
			for _, c := range checks {
				var attrs []*hclext.Attribute
				if c.Block == "" {
					if a, ok := res.Body.Attributes[c.Attribute]; ok {
						attrs = append(attrs, a)
					}
				} else {
					for _, b := range res.Body.Blocks.OfType(c.Block) {
						if a, ok := b.Body.Attributes[c.Attribute]; ok {
							attrs = append(attrs, a)
						}
					}
				}
				for _, a := range attrs {
					if err := r.checkValue(runner, c, a.Expr); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func (r *EnumRule) checkValue(runner tflint.Runner, c enumCheck, expr hcl.Expression) error {
	var values []string
	if c.List {
		if err := runner.EvaluateExpr(expr, &values, nil); err != nil {
			if ignorable(err) {
				return nil
			}
			return err
		}
	} else {
		var v string
		if err := runner.EvaluateExpr(expr, &v, nil); err != nil {
			if ignorable(err) {
				return nil
			}
			return err
		}
		values = []string{v}
	}
	for _, v := range values {
		if !contains(c.Allowed, v) {
			name := c.Attribute
			if c.Block != "" {
				name = c.Block + "." + c.Attribute
			}
			msg := fmt.Sprintf("%s is not a valid value for %s.%s (allowed: %s)", strconv.Quote(v), c.Resource, name, strings.Join(c.Allowed, ", "))
			if err := runner.EmitIssue(r, msg, expr.Range()); err != nil {
				return err
			}
		}
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
