//! Regions in AWS names: what an ARN or an endpoint URL says, checked to have a region's form, so
//! that a value from outside (an alarm's ARN, a command line) never becomes a console host or an
//! SDK region unchecked.

/// The region an ARN (`arn:aws:lambda:eu-west-1:…`) or an AWS endpoint URL
/// (`https://sqs.eu-west-1.amazonaws.com/…`) names, if it has a region's form.
pub fn region_in(text: &str) -> Option<String> {
    let candidate = if let Some(rest) = text.strip_prefix("arn:") {
        rest.split(':').nth(2)?.to_owned()
    } else {
        let host = text.split("://").nth(1)?.split(['/', ':']).next()?;
        let mut labels = host.split('.');
        let (_service, region) = (labels.next()?, labels.next()?);
        host.ends_with(".amazonaws.com").then(|| region.to_owned())?
    };
    is_region_code(&candidate).then_some(candidate)
}

/// `xx-name-N` and `xx-name-name-N`: two lowercase letters, one or two lowercase words, a number
/// (`us-east-1`, `us-gov-west-1`, `ap-southeast-2`).
pub fn is_region_code(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| (2..=12).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts.last().is_some_and(|n| (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}
