//! Experiment statistics: two-proportion comparisons and the sample-ratio
//! mismatch test, on `statrs` distributions. Checked against SciPy in the
//! tests (`testdata/stats_reference.{py,json}`).

use statrs::distribution::{Beta, ChiSquared, Continuous, ContinuousCDF, Normal};

/// Observations of one variant: exposed customers and converted customers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    /// Exposed (unique customers).
    pub n: u64,
    /// Converted (unique exposed customers with the goal outcome).
    pub x: u64,
}

impl Counts {
    /// Conversion rate, or `None` with no exposures.
    pub fn rate(self) -> Option<f64> {
        (self.n > 0).then(|| self.x as f64 / self.n as f64)
    }

    /// 95% interval of the conversion rate (Wilson score interval, which
    /// stays within 0–1 and is sound at small counts), or `None` with no
    /// exposures.
    pub fn rate_interval(self) -> Option<(f64, f64)> {
        let p = self.rate()?;
        let n = self.n as f64;
        let z = normal().inverse_cdf(0.975);
        let z2 = z * z;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        Some(((centre - half).max(0.0), (centre + half).min(1.0)))
    }
}

/// A treatment compared with the control.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Relative lift of the rate, `(t - c) / c`; `None` when the control rate is 0.
    pub lift: Option<f64>,
    /// 95% confidence interval of the lift (delta method).
    pub lift_ci: Option<(f64, f64)>,
    /// Two-sided p-value of the pooled two-proportion z-test.
    pub p_value: Option<f64>,
    /// Bayesian chance that the treatment's rate beats the control's, with
    /// uniform Beta(1, 1) priors.
    pub chance_to_beat_control: Option<f64>,
}

fn normal() -> Normal {
    Normal::standard()
}

/// Compares `treatment` with `control`.
pub fn compare(control: Counts, treatment: Counts) -> Comparison {
    let (Some(rc), Some(rt)) = (control.rate(), treatment.rate()) else {
        return Comparison {
            lift: None,
            lift_ci: None,
            p_value: None,
            chance_to_beat_control: None,
        };
    };
    let (nc, nt) = (control.n as f64, treatment.n as f64);
    let pooled = (control.x + treatment.x) as f64 / (nc + nt);
    let se = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt)).sqrt();
    let p_value = if se > 0.0 {
        2.0 * (1.0 - normal().cdf((rt - rc).abs() / se))
    } else {
        1.0
    };
    let (lift, lift_ci) = if rc > 0.0 {
        let lift = (rt - rc) / rc;
        let var =
            rt * (1.0 - rt) / nt / rc.powi(2) + rt.powi(2) * rc * (1.0 - rc) / nc / rc.powi(4);
        let z = normal().inverse_cdf(0.975);
        (
            Some(lift),
            Some((lift - z * var.sqrt(), lift + z * var.sqrt())),
        )
    } else {
        (None, None)
    };
    Comparison {
        lift,
        lift_ci,
        p_value: Some(p_value),
        chance_to_beat_control: chance_to_beat(control, treatment),
    }
}

/// P(rate_t > rate_c) under Beta(1 + x, 1 + n − x) posteriors: ∫ pdf_t · cdf_c,
/// by Simpson's rule over the region where either posterior has mass.
fn chance_to_beat(control: Counts, treatment: Counts) -> Option<f64> {
    let posterior = |c: Counts| Beta::new(1.0 + c.x as f64, 1.0 + (c.n - c.x) as f64).ok();
    let (a, b) = (posterior(control)?, posterior(treatment)?);
    let span = |d: &Beta| {
        let (alpha, beta) = (d.shape_a(), d.shape_b());
        let mean = alpha / (alpha + beta);
        let sd = (alpha * beta / ((alpha + beta).powi(2) * (alpha + beta + 1.0))).sqrt();
        ((mean - 14.0 * sd).max(0.0), (mean + 14.0 * sd).min(1.0))
    };
    let ((lo_a, hi_a), (lo_b, hi_b)) = (span(&a), span(&b));
    let (lo, hi) = (lo_a.min(lo_b), hi_a.max(hi_b));
    const STEPS: usize = 4000;
    let h = (hi - lo) / STEPS as f64;
    let f = |x: f64| {
        let density = b.pdf(x);
        if density.is_finite() {
            density * a.cdf(x)
        } else {
            0.0
        }
    };
    let mut sum = f(lo) + f(hi);
    for i in 1..STEPS {
        sum += f(lo + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    Some((sum * h / 3.0).clamp(0.0, 1.0))
}

/// p-value of Pearson's chi-square test of the observed split against the
/// configured weights (sample-ratio mismatch); `None` with no observations.
pub fn srm_p_value(observed: &[u64], weights: &[f64]) -> Option<f64> {
    let total: u64 = observed.iter().sum();
    if total == 0 || observed.len() < 2 || observed.len() != weights.len() {
        return None;
    }
    let chi2: f64 = observed
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0)
        .map(|(&o, &w)| {
            let expected = total as f64 * w;
            (o as f64 - expected).powi(2) / expected
        })
        .sum();
    let dist = ChiSquared::new((observed.len() - 1) as f64).ok()?;
    Some(1.0 - dist.cdf(chi2))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::Value;

    use super::*;

    const REFERENCE: &str = include_str!("../testdata/stats_reference.json");

    #[test]
    fn the_rate_interval_is_wilsons() {
        // statsmodels' proportion_confint(10, 100, method="wilson").
        let (lo, hi) = Counts { n: 100, x: 10 }.rate_interval().unwrap();
        close(lo, 0.055_229, 1e-5, "wilson low");
        close(hi, 0.174_366, 1e-5, "wilson high");
        let (lo, hi) = Counts { n: 5, x: 0 }.rate_interval().unwrap();
        assert!(lo.abs() < 1e-12 && hi > 0.0 && hi < 1.0, "{lo} {hi}");
        assert_eq!(Counts { n: 0, x: 0 }.rate_interval(), None);
    }

    fn close(got: f64, want: f64, tolerance: f64, what: &str) {
        assert!(
            (got - want).abs() <= tolerance,
            "{what}: got {got}, SciPy says {want}"
        );
    }

    fn counts(v: &Value) -> Counts {
        Counts {
            n: v[0].as_u64().unwrap(),
            x: v[1].as_u64().unwrap(),
        }
    }

    #[test]
    fn proportions_match_scipy() {
        let reference: Value = serde_json::from_str(REFERENCE).unwrap();
        for case in reference["proportions"].as_array().unwrap() {
            let got = compare(counts(&case["control"]), counts(&case["treatment"]));
            let name = format!("{} vs {}", case["control"], case["treatment"]);
            close(
                got.p_value.unwrap(),
                case["p_value"].as_f64().unwrap(),
                1e-9,
                &name,
            );
            close(
                got.chance_to_beat_control.unwrap(),
                case["chance_to_beat_control"].as_f64().unwrap(),
                1e-6,
                &name,
            );
            match case["lift"].as_f64() {
                Some(lift) => {
                    close(got.lift.unwrap(), lift, 1e-12, &name);
                    let (lo, hi) = got.lift_ci.unwrap();
                    close(lo, case["lift_ci"][0].as_f64().unwrap(), 1e-9, &name);
                    close(hi, case["lift_ci"][1].as_f64().unwrap(), 1e-9, &name);
                }
                None => assert_eq!((got.lift, got.lift_ci), (None, None), "{name}"),
            }
        }
    }

    #[test]
    fn srm_matches_scipy() {
        let reference: Value = serde_json::from_str(REFERENCE).unwrap();
        for case in reference["srm"].as_array().unwrap() {
            let observed: Vec<u64> = serde_json::from_value(case["observed"].clone()).unwrap();
            let weights: Vec<f64> = serde_json::from_value(case["weights"].clone()).unwrap();
            let got = srm_p_value(&observed, &weights).unwrap();
            close(
                got,
                case["p_value"].as_f64().unwrap(),
                1e-9,
                &format!("{observed:?}"),
            );
        }
    }

    #[test]
    fn empty_variants_have_no_statistics() {
        let none = compare(Counts { n: 0, x: 0 }, Counts { n: 10, x: 1 });
        assert_eq!(none.p_value, None);
        assert_eq!(srm_p_value(&[0, 0], &[0.5, 0.5]), None);
    }
}
