//! The stack as CloudFormation would create it, for the template tests: `template.yaml` through the
//! SAM CLI's own transforms (`infra/stack_template.py`), then every intrinsic function resolved to the
//! value CloudFormation documents for it, in an account, region and stack name of the tests' own.
//! Physical names follow CloudFormation's documented return values: a log group's `Arn` attribute
//! ends in `:*`, a queue's `Ref` is its URL, a topic's `Ref` its ARN.
//!
//! On that resolved stack, [`Stack::allows`] evaluates a request against a role's policies with IAM's
//! matching rules (wildcards `*` and `?`, case-insensitive actions, the condition operators the
//! template uses, an explicit deny winning), and [`Stack::may_invoke`] a service's invocation against
//! a function's resource policy (its `AWS::Lambda::Permission`s, nested stacks included).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::{ACCOUNT, REGION, repo_root, tool};

pub const STACK: &str = "voicelake";
pub const PARTITION: &str = "aws";

/// One deployed stack: resources with their properties resolved, and its nested stacks.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Logical id → resolved resource (`Type`, `Properties`, …), conditions applied.
    pub resources: BTreeMap<String, Value>,
    pub parameters: BTreeMap<String, Value>,
    pub nested: BTreeMap<String, Stack>,
    template: Value,
}

impl Stack {
    /// `template.yaml` deployed with the template's defaults and `overrides`.
    pub fn deployed(overrides: &[(&str, &str)]) -> Stack {
        let parameters: Map<String, Value> = overrides.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let out = Command::new(tool("python"))
            .arg(repo_root().join("infra/stack_template.py"))
            .arg(repo_root().join("template.yaml"))
            .arg(Value::Object(parameters).to_string())
            .envs(crate::FAKE_ENV)
            .env("SAM_CLI_TELEMETRY", "0")
            .output()
            .expect("python runs infra/stack_template.py");
        assert!(out.status.success(), "the SAM CLI's transforms refused template.yaml:\n{}", String::from_utf8_lossy(&out.stderr));
        let template: Value = serde_json::from_slice(&out.stdout).expect("stack_template.py prints JSON");
        let given: BTreeMap<String, String> = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Stack::resolve(template, &given)
    }

    fn resolve(template: Value, given: &BTreeMap<String, String>) -> Stack {
        let mut parameters = BTreeMap::new();
        for (name, p) in template["Parameters"].as_object().into_iter().flatten() {
            let value = given.get(name).cloned().or_else(|| p.get("Default").map(scalar_text));
            let Some(value) = value else { continue };
            let value = if p["Type"] == "CommaDelimitedList" {
                json!(value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>())
            } else {
                json!(value)
            };
            parameters.insert(name.clone(), value);
        }
        let mut stack = Stack { resources: BTreeMap::new(), parameters, nested: BTreeMap::new(), template };
        let conditions: BTreeMap<String, bool> =
            stack.template["Conditions"].as_object().into_iter().flatten().map(|(name, _)| (name.clone(), stack.condition(name))).collect();
        let ids: Vec<String> = stack.template["Resources"].as_object().expect("Resources").keys().cloned().collect();
        for id in ids {
            let raw = stack.template["Resources"][&id].clone();
            if let Some(c) = raw["Condition"].as_str()
                && !conditions[c]
            {
                continue;
            }
            let resolved = stack.eval(&raw);
            stack.resources.insert(id, resolved);
        }
        for (id, nested) in stack.template["NestedStacks"].clone().as_object().into_iter().flatten() {
            if !stack.resources.contains_key(id) {
                continue;
            }
            let given: BTreeMap<String, String> =
                nested["Parameters"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), scalar_text(&stack.eval(v)))).collect();
            let mut child = nested["Template"].clone();
            child["NestedStacks"] = json!({});
            stack.nested.insert(id.clone(), Stack::resolve(child, &given));
        }
        stack
    }

    pub fn resource(&self, id: &str) -> &Value {
        self.resources.get(id).unwrap_or_else(|| panic!("the stack has no resource {id}"))
    }

    /// Every resource of this stack and its nested stacks, `Parent/Child` for nested ones.
    pub fn all_resources(&self) -> Vec<(String, &Value)> {
        let mut out: Vec<(String, &Value)> = self.resources.iter().map(|(k, v)| (k.clone(), v)).collect();
        for (id, nested) in &self.nested {
            out.extend(nested.all_resources().into_iter().map(|(k, v)| (format!("{id}/{k}"), v)));
        }
        out
    }

    fn condition(&self, name: &str) -> bool {
        let c = self.template["Conditions"][name].clone();
        self.eval(&c).as_bool().unwrap_or_else(|| panic!("condition {name} is not a boolean"))
    }

    /// The value of `v` with every intrinsic function evaluated. `AWS::NoValue` becomes `null`, and is
    /// then removed from objects and arrays.
    pub fn eval(&self, v: &Value) -> Value {
        match v {
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().expect("one key");
                match k.as_str() {
                    "Ref" => self.reference(arg.as_str().expect("Ref names")),
                    "Fn::GetAtt" => {
                        let (id, attribute) = match arg {
                            Value::Array(a) => (
                                scalar_text(&self.eval(&a[0])),
                                a[1..].iter().map(|p| scalar_text(&self.eval(p))).collect::<Vec<_>>().join("."),
                            ),
                            Value::String(s) => {
                                let (id, attr) = s.split_once('.').expect("GetAtt Id.Attribute");
                                (id.to_owned(), attr.to_owned())
                            }
                            other => panic!("GetAtt of {other}"),
                        };
                        json!(self.attribute(&id, &attribute))
                    }
                    "Fn::Sub" => match arg {
                        Value::String(s) => json!(self.sub(s, &Map::new())),
                        Value::Array(a) => {
                            let vars: Map<String, Value> =
                                a[1].as_object().expect("Sub variables").iter().map(|(k, v)| (k.clone(), self.eval(v))).collect();
                            json!(self.sub(a[0].as_str().expect("Sub text"), &vars))
                        }
                        other => panic!("Sub of {other}"),
                    },
                    "Fn::Join" => {
                        let a = arg.as_array().expect("Join [sep, list]");
                        let items = self.eval(&a[1]);
                        let parts: Vec<String> = items.as_array().expect("Join list").iter().map(scalar_text).collect();
                        json!(parts.join(a[0].as_str().expect("Join separator")))
                    }
                    "Fn::Split" => {
                        let a = arg.as_array().expect("Split [sep, text]");
                        let text = scalar_text(&self.eval(&a[1]));
                        json!(text.split(a[0].as_str().expect("Split separator")).collect::<Vec<_>>())
                    }
                    "Fn::Select" => {
                        let a = arg.as_array().expect("Select [n, list]");
                        let n: usize = scalar_text(&self.eval(&a[0])).parse().expect("Select index");
                        let list = self.eval(&a[1]);
                        list.as_array().expect("Select list").get(n).cloned().unwrap_or_else(|| panic!("Select {n} of {list}"))
                    }
                    "Fn::If" => {
                        let a = arg.as_array().expect("If [cond, then, else]");
                        let branch = if self.condition(a[0].as_str().expect("If condition")) { &a[1] } else { &a[2] };
                        self.eval(branch)
                    }
                    "Fn::Equals" => {
                        let a = arg.as_array().expect("Equals [a, b]");
                        json!(scalar_text(&self.eval(&a[0])) == scalar_text(&self.eval(&a[1])))
                    }
                    "Fn::Not" => json!(!self.eval(&arg[0]).as_bool().expect("Not of a boolean")),
                    "Fn::And" => json!(arg.as_array().expect("And list").iter().all(|c| self.eval(c) == json!(true))),
                    "Fn::Or" => json!(arg.as_array().expect("Or list").iter().any(|c| self.eval(c) == json!(true))),
                    "Condition" => json!(self.condition(arg.as_str().expect("Condition name"))),
                    k if k.starts_with("Fn::") => panic!("the template uses {k}, which these tests do not evaluate"),
                    _ => Value::Object(self.eval_map(m)),
                }
            }
            Value::Object(m) => Value::Object(self.eval_map(m)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.eval(x)).filter(|x| !x.is_null()).collect()),
            other => other.clone(),
        }
    }

    fn eval_map(&self, m: &Map<String, Value>) -> Map<String, Value> {
        m.iter().map(|(k, v)| (k.clone(), self.eval(v))).filter(|(_, v)| !v.is_null()).collect()
    }

    fn reference(&self, name: &str) -> Value {
        match name {
            "AWS::Region" => json!(REGION),
            "AWS::AccountId" => json!(ACCOUNT),
            "AWS::StackName" => json!(STACK),
            "AWS::Partition" => json!(PARTITION),
            "AWS::URLSuffix" => json!("amazonaws.com"),
            "AWS::StackId" => json!(format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0")),
            "AWS::NoValue" => Value::Null,
            _ => {
                if let Some(p) = self.parameters.get(name) {
                    return p.clone();
                }
                json!(self.physical_id(name))
            }
        }
    }

    fn raw_property(&self, id: &str, path: &[&str]) -> Option<String> {
        let mut v = &self.template["Resources"][id]["Properties"];
        for p in path {
            v = &v[*p];
        }
        (!v.is_null()).then(|| scalar_text(&self.eval(v)))
    }

    /// A name CloudFormation would generate: the stack, the logical id, a suffix.
    fn generated(id: &str) -> String {
        format!("{STACK}-{id}-1A2B3C4D5E6F")
    }

    /// What `Ref` of a resource returns, by the resource type's documented return value.
    pub fn physical_id(&self, id: &str) -> String {
        let r = &self.template["Resources"][id];
        let kind = r["Type"].as_str().unwrap_or_else(|| panic!("Ref to {id}, which is neither a parameter nor a resource"));
        let named = |path: &[&str]| self.raw_property(id, path).unwrap_or_else(|| Stack::generated(id));
        match kind {
            "AWS::Logs::LogGroup" => named(&["LogGroupName"]),
            "AWS::Logs::LogStream" => named(&["LogStreamName"]),
            "AWS::Lambda::Function" => named(&["FunctionName"]),
            "AWS::IAM::Role" => named(&["RoleName"]),
            "AWS::SQS::Queue" => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{}", named(&["QueueName"])),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{}", named(&["TopicName"])),
            "AWS::KMS::Key" => format!("1234abcd-12ab-34cd-56ef-{:012}", id.len()),
            "AWS::KinesisFirehose::DeliveryStream" => named(&["DeliveryStreamName"]),
            "AWS::S3::Bucket" => named(&["BucketName"]).to_lowercase(),
            "AWS::Glue::Database" => named(&["DatabaseInput", "Name"]),
            "AWS::Glue::Table" => named(&["TableInput", "Name"]),
            "AWS::Athena::WorkGroup" => named(&["Name"]),
            "AWS::DynamoDB::Table" => named(&["TableName"]),
            // "Ref returns the ARN of the secret": the name, then a dash and six random characters.
            "AWS::SecretsManager::Secret" => {
                format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{}-AbCdEf", named(&["Name"]))
            }
            "AWS::Events::Rule" => named(&["Name"]),
            "AWS::CloudWatch::Alarm" | "AWS::CloudWatch::CompositeAlarm" => named(&["AlarmName"]),
            "AWS::CloudWatch::Dashboard" => named(&["DashboardName"]),
            "AWS::Lambda::Version" => format!("{}:1", self.attribute(&self.function_of(id), "Arn")),
            "AWS::Lambda::Alias" => format!("{}:{}", self.attribute(&self.function_of(id), "Arn"), named(&["Name"])),
            "AWS::CloudFormation::Stack" => format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{}/0", Stack::generated(id)),
            _ => format!("{id}-physical-id"),
        }
    }

    /// The function a version or alias belongs to.
    fn function_of(&self, id: &str) -> String {
        let name = &self.template["Resources"][id]["Properties"]["FunctionName"];
        name["Ref"].as_str().map(str::to_owned).unwrap_or_else(|| panic!("{id}: FunctionName is not a Ref"))
    }

    /// What `Fn::GetAtt` returns, by the documented return values.
    pub fn attribute(&self, id: &str, attribute: &str) -> String {
        let r = &self.template["Resources"][id];
        let kind = r["Type"].as_str().unwrap_or_else(|| panic!("GetAtt of {id}, which is no resource"));
        let name = self.physical_id(id);
        match (kind, attribute) {
            // "Arn: … for example arn:aws:logs:us-west-1:123456789012:log-group:/mystack-testgroup-12ABC1AB12A1:*"
            ("AWS::Logs::LogGroup", "Arn") => format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"),
            ("AWS::Lambda::Function", "Arn") => format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"),
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{}", name.rsplit('/').next().expect("a queue URL")),
            ("AWS::SQS::Queue", "QueueName") => name.rsplit('/').next().expect("a queue URL").to_owned(),
            ("AWS::SQS::Queue", "QueueUrl") => name,
            ("AWS::SNS::Topic", "TopicArn") => name,
            ("AWS::SNS::Topic", "TopicName") => name.rsplit(':').next().expect("a topic ARN").to_owned(),
            ("AWS::KMS::Key", "Arn") => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}"),
            ("AWS::KinesisFirehose::DeliveryStream", "Arn") => format!("arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}"),
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{name}"),
            ("AWS::DynamoDB::Table", "Arn") => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"),
            ("AWS::Events::Rule", "Arn") => format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"),
            ("AWS::CloudWatch::Alarm" | "AWS::CloudWatch::CompositeAlarm", "Arn") => {
                format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}")
            }
            ("AWS::Lambda::Version", "Version") => "1".into(),
            _ => panic!("GetAtt {id}.{attribute} ({kind}): give its documented return value in tests/src/stack.rs"),
        }
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let end = after.find('}').unwrap_or_else(|| panic!("an unclosed ${{ in {text:?}"));
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&scalar_text(v));
            } else if let Some((id, attribute)) = name.split_once('.').filter(|(id, _)| !id.starts_with("AWS::")) {
                out.push_str(&self.attribute(id, attribute));
            } else {
                out.push_str(&scalar_text(&self.reference(name)));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The identity policy statements of a role: its inline policies and the policies attached to it.
    pub fn role_statements(&self, role: &str) -> Vec<Value> {
        let name = self.physical_id(role);
        let mut documents: Vec<&Value> =
            self.resource(role)["Properties"]["Policies"].as_array().into_iter().flatten().map(|p| &p["PolicyDocument"]).collect();
        for r in self.resources.values() {
            let attached = match r["Type"].as_str() {
                Some("AWS::IAM::RolePolicy") => r["Properties"]["RoleName"] == json!(name),
                Some("AWS::IAM::Policy") => r["Properties"]["Roles"].as_array().is_some_and(|rs| rs.contains(&json!(name))),
                _ => false,
            };
            if attached {
                documents.push(&r["Properties"]["PolicyDocument"]);
            }
        }
        documents.iter().flat_map(|d| list(&d["Statement"])).collect()
    }

    /// Whether `role` may make `request`: an Allow matches and no Deny does.
    pub fn allows(&self, role: &str, request: &Request) -> bool {
        let statements = self.role_statements(role);
        let matching = |effect: &str| statements.iter().any(|s| s["Effect"] == effect && statement_matches(s, request));
        !matching("Deny") && matching("Allow")
    }

    /// Whether `service`, acting for `source_arn` in `source_account`, may invoke the function `function`
    /// (a logical id of this stack), by the function's `AWS::Lambda::Permission`s here and in nested stacks.
    pub fn may_invoke(&self, function: &str, service: &str, source_arn: &str, source_account: &str) -> bool {
        let name = self.physical_id(function);
        let arn = self.attribute(function, "Arn");
        self.all_resources().iter().filter(|(_, r)| r["Type"] == "AWS::Lambda::Permission").any(|(_, r)| {
            let p = &r["Properties"];
            let target = scalar_text(&p["FunctionName"]);
            (target == name || target == arn)
                && p["Action"] == "lambda:InvokeFunction"
                && p["Principal"] == service
                && p.get("SourceArn").is_none_or(|s| glob(&scalar_text(s), source_arn, false))
                && p.get("SourceAccount").is_none_or(|a| scalar_text(a) == source_account)
        })
    }
}

/// A request to authorize: an action on a resource, with the request's condition keys.
#[derive(Debug, Clone)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: Vec<(String, String)>,
}

impl Request {
    pub fn new(action: &str, resource: impl Into<String>) -> Request {
        Request { action: action.to_owned(), resource: resource.into(), context: Vec::new() }
    }

    pub fn with(mut self, key: &str, value: &str) -> Request {
        self.context.push((key.to_owned(), value.to_owned()));
        self
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// A scalar as text, the way CloudFormation passes parameters and Sub values.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn glob(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let fold = |s: &str| if case_insensitive { s.to_ascii_lowercase() } else { s.to_owned() };
    let (p, t): (Vec<char>, Vec<char>) = (fold(pattern).chars().collect(), fold(text).chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn statement_matches(s: &Value, r: &Request) -> bool {
    assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none(), "NotAction/NotResource are not evaluated here: {s}");
    let action = list(&s["Action"]).iter().any(|a| glob(&scalar_text(a), &r.action, true));
    let resource = list(&s["Resource"]).iter().any(|p| glob(&scalar_text(p), &r.resource, false));
    action && resource && conditions_hold(&s["Condition"], r)
}

fn conditions_hold(conditions: &Value, r: &Request) -> bool {
    let Some(operators) = conditions.as_object() else { return true };
    operators.iter().all(|(operator, keys)| {
        keys.as_object().expect("a condition block").iter().all(|(key, wanted)| {
            let (base, if_exists) = match operator.strip_suffix("IfExists") {
                Some(b) => (b, true),
                None => (operator.as_str(), false),
            };
            let Some((_, got)) = r.context.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) else { return if_exists };
            let wanted: Vec<String> = list(wanted).iter().map(scalar_text).collect();
            match base {
                "StringEquals" | "ArnEquals" => wanted.iter().any(|w| w == got),
                "StringNotEquals" => wanted.iter().all(|w| w != got),
                "StringLike" | "ArnLike" => wanted.iter().any(|w| glob(w, got, false)),
                "Bool" => wanted.iter().any(|w| w.eq_ignore_ascii_case(got)),
                other => panic!("condition operator {other} is not evaluated here"),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("arn:aws:logs:r:a:log-group:g:*", "arn:aws:logs:r:a:log-group:g:log-stream:s", false));
        assert!(!glob("arn:aws:logs:r:a:log-group:g:*:log-stream:*", "arn:aws:logs:r:a:log-group:g:log-stream:s", false));
        assert!(glob("logs:Put*", "logs:putlogevents", true));
        assert!(glob("a?c", "abc", false) && !glob("a?c", "ac", false));
        assert!(!glob("arn:aws:s3:::b/turns/*", "arn:aws:s3:::b/athena-results/x", false));
    }

    #[test]
    fn conditions_need_their_keys() {
        let s = json!({"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "VoiceLake"}}});
        assert!(statement_matches(&s, &Request::new("cloudwatch:PutMetricData", "*").with("cloudwatch:namespace", "VoiceLake")));
        assert!(!statement_matches(&s, &Request::new("cloudwatch:PutMetricData", "*").with("cloudwatch:namespace", "Other")));
        assert!(!statement_matches(&s, &Request::new("cloudwatch:PutMetricData", "*")));
    }
}
