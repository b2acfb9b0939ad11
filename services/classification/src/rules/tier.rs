//! Value tier: VIP, PREFERRED or STANDARD from the profile's assets,
//! contribution and potential value against the policy's thresholds.
//!
//! Any one measure reaching a tier's threshold qualifies, because each is a
//! reason on its own to treat the customer as valuable (large deposits, a
//! large yearly revenue, or a large prospect). The reason lists every
//! measure that qualified, so an agent sees all of them.

use rapport_proto::{Customer, ValueTier};

use super::{Reasoned, amount};
use crate::policy::{Thresholds, TierPolicy};

/// The customer's tier. `None` is an unknown caller: STANDARD, since
/// nothing on record says otherwise.
pub fn tier(policy: &TierPolicy, customer: Option<&Customer>) -> Reasoned<ValueTier> {
    let Some(customer) = customer else {
        return Reasoned::new(ValueTier::Standard, "unknown caller");
    };
    let measures = measures(customer);

    for (tier, label, thresholds) in [
        (ValueTier::Vip, "VIP", &policy.vip),
        (ValueTier::Preferred, "PREFERRED", &policy.preferred),
    ] {
        let reached: Vec<String> = compare(&measures, thresholds)
            .filter(|c| c.value >= c.threshold)
            .map(|c| {
                format!(
                    "{} {} ≥ {label} threshold {}",
                    c.name,
                    amount(c.value),
                    amount(c.threshold)
                )
            })
            .collect();
        if !reached.is_empty() {
            return Reasoned::new(tier, reached.join("; "));
        }
    }

    let below: Vec<String> = compare(&measures, &policy.preferred)
        .map(|c| format!("{} {} < {}", c.name, amount(c.value), amount(c.threshold)))
        .collect();
    Reasoned::new(
        ValueTier::Standard,
        format!("below every PREFERRED threshold ({})", below.join("; ")),
    )
}

struct Comparison {
    name: &'static str,
    value: i64,
    threshold: i64,
}

fn measures(customer: &Customer) -> [(&'static str, i64); 3] {
    [
        ("assets", customer.assets),
        ("contribution", customer.contribution),
        ("potential value", customer.potential_value),
    ]
}

/// The measures the tier has a threshold for, with that threshold.
fn compare<'a>(
    measures: &'a [(&'static str, i64); 3],
    thresholds: &Thresholds,
) -> impl Iterator<Item = Comparison> + 'a {
    let limits = [
        thresholds.assets,
        thresholds.contribution,
        thresholds.potential_value,
    ];
    measures
        .iter()
        .zip(limits)
        .filter_map(|(&(name, value), threshold)| {
            threshold.map(|threshold| Comparison {
                name,
                value,
                threshold,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn policy() -> Policy {
        Policy::builtin().expect("built-in policy")
    }

    fn customer(assets: i64, contribution: i64, potential_value: i64) -> Customer {
        Customer {
            assets,
            contribution,
            potential_value,
            ..Customer::default()
        }
    }

    #[test]
    fn the_reference_customer_is_vip_by_assets() {
        let policy = policy();
        let result = tier(policy.tiers(), Some(&customer(8_000_000, 0, 0)));
        assert_eq!(result.value, ValueTier::Vip);
        assert_eq!(result.reason, "assets 8,000,000 ≥ VIP threshold 5,000,000");
    }

    #[test]
    fn thresholds_are_inclusive() {
        let policy = policy();
        let tiers = policy.tiers();
        assert_eq!(
            tier(tiers, Some(&customer(5_000_000, 0, 0))).value,
            ValueTier::Vip
        );
        assert_eq!(
            tier(tiers, Some(&customer(4_999_999, 0, 0))).value,
            ValueTier::Preferred
        );
        assert_eq!(
            tier(tiers, Some(&customer(500_000, 0, 0))).value,
            ValueTier::Preferred
        );
        assert_eq!(
            tier(tiers, Some(&customer(499_999, 0, 0))).value,
            ValueTier::Standard
        );
    }

    #[test]
    fn any_one_measure_qualifies_and_every_qualifying_one_is_named() {
        let policy = policy();
        let tiers = policy.tiers();
        let by_contribution = tier(tiers, Some(&customer(0, 600_000, 0)));
        assert_eq!(by_contribution.value, ValueTier::Vip);
        assert!(by_contribution.reason.starts_with("contribution 600,000"));

        let by_potential = tier(tiers, Some(&customer(0, 0, 2_000_000)));
        assert_eq!(by_potential.value, ValueTier::Preferred);
        assert_eq!(
            by_potential.reason,
            "potential value 2,000,000 ≥ PREFERRED threshold 2,000,000"
        );

        let both = tier(tiers, Some(&customer(6_000_000, 500_000, 0)));
        assert_eq!(
            both.reason,
            "assets 6,000,000 ≥ VIP threshold 5,000,000; contribution 500,000 ≥ VIP threshold 500,000"
        );
    }

    #[test]
    fn standard_explains_what_was_missing() {
        let policy = policy();
        let result = tier(policy.tiers(), Some(&customer(100_000, 0, -5)));
        assert_eq!(result.value, ValueTier::Standard);
        assert_eq!(
            result.reason,
            "below every PREFERRED threshold (assets 100,000 < 500,000; contribution 0 < 50,000; potential value -5 < 2,000,000)"
        );
    }

    #[test]
    fn an_unknown_caller_is_standard() {
        let policy = policy();
        let result = tier(policy.tiers(), None);
        assert_eq!(result.value, ValueTier::Standard);
        assert_eq!(result.reason, "unknown caller");
    }

    #[test]
    fn an_unset_threshold_never_qualifies() {
        let policy = Policy::parse(
            &crate::policy::BUILTIN_POLICY
                .replace("potential_value = 20_000_000\n", "")
                .replace("potential_value = 2_000_000\n", ""),
        )
        .expect("valid");
        let result = tier(policy.tiers(), Some(&customer(0, 0, i64::MAX)));
        assert_eq!(result.value, ValueTier::Standard);
        assert!(!result.reason.contains("potential"), "{}", result.reason);
    }
}
