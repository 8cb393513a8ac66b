//! Every band edge of every parameter, transcribed from the cited charts (RCP NEWS2 2017
//! Chart 1 and Chart 4; Sepsis-3 qSOFA; ACCP/SCCM 1992 SIRS), on both sides of each edge.

use aorta_clinical::news2::{self, News2Input, RiskBand};
use aorta_clinical::{Consciousness, InputError, qsofa, sirs};
use proptest::prelude::*;
use serde_json::json;

fn sub(input: News2Input, param: &str) -> Option<u8> {
    news2::score(&input).unwrap().subscores.get(param).copied()
}

#[test]
fn news2_respiration_rate_edges() {
    for (rr, want) in [
        (0.0, 3),
        (8.0, 3),
        (9.0, 1),
        (11.0, 1),
        (12.0, 0),
        (20.0, 0),
        (21.0, 2),
        (24.0, 2),
        (25.0, 3),
        (60.0, 3),
    ] {
        let got = sub(
            News2Input {
                rr: Some(rr),
                ..Default::default()
            },
            "rr",
        );
        assert_eq!(got, Some(want), "rr {rr}");
    }
}

#[test]
fn news2_spo2_scale_1_edges() {
    for (s, want) in [
        (70.0, 3),
        (91.0, 3),
        (92.0, 2),
        (93.0, 2),
        (94.0, 1),
        (95.0, 1),
        (96.0, 0),
        (100.0, 0),
    ] {
        for o in [false, true] {
            let got = sub(
                News2Input {
                    spo2: Some(s),
                    on_oxygen: Some(o),
                    ..Default::default()
                },
                "spo2",
            );
            assert_eq!(got, Some(want), "scale 1 spo2 {s} oxygen {o}");
        }
    }
}

#[test]
fn news2_spo2_scale_2_edges_on_air_and_on_oxygen() {
    let air = [
        (80.0, 3),
        (83.0, 3),
        (84.0, 2),
        (85.0, 2),
        (86.0, 1),
        (87.0, 1),
        (88.0, 0),
        (92.0, 0),
        (93.0, 0),
        (97.0, 0),
        (100.0, 0),
    ];
    let oxygen = [
        (83.0, 3),
        (84.0, 2),
        (85.0, 2),
        (86.0, 1),
        (87.0, 1),
        (88.0, 0),
        (92.0, 0),
        (93.0, 1),
        (94.0, 1),
        (95.0, 2),
        (96.0, 2),
        (97.0, 3),
        (100.0, 3),
    ];
    for (on_oxygen, table) in [(false, &air[..]), (true, &oxygen[..])] {
        for &(s, want) in table {
            let input = News2Input {
                spo2: Some(s),
                spo2_scale: Some(2),
                on_oxygen: Some(on_oxygen),
                ..Default::default()
            };
            assert_eq!(
                sub(input, "spo2"),
                Some(want),
                "scale 2 spo2 {s} oxygen {on_oxygen}"
            );
        }
    }
    // Above 92 % on scale 2 the band depends on air or oxygen: unknown without it.
    let r = news2::score(&News2Input {
        spo2: Some(95.0),
        spo2_scale: Some(2),
        ..Default::default()
    })
    .unwrap();
    assert!(
        r.missing.contains(&"spo2".to_string()) && r.missing.contains(&"air_or_oxygen".to_string())
    );
    assert_eq!(
        sub(
            News2Input {
                spo2: Some(90.0),
                spo2_scale: Some(2),
                ..Default::default()
            },
            "spo2"
        ),
        Some(0)
    );
}

#[test]
fn news2_oxygen_adds_two_on_top_of_the_spo2_score() {
    let on = news2::score(&News2Input {
        spo2: Some(97.0),
        spo2_scale: Some(2),
        on_oxygen: Some(true),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(on.subscores["air_or_oxygen"], 2);
    assert_eq!(
        on.total,
        Some(5),
        "3 for SpO2 97 % on oxygen (scale 2) + 2 for oxygen"
    );
    let air = news2::score(&News2Input {
        spo2: Some(97.0),
        on_oxygen: Some(false),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(air.total, Some(0));
}

#[test]
fn news2_systolic_pulse_consciousness_temperature_edges() {
    for (v, want) in [
        (60.0, 3),
        (90.0, 3),
        (91.0, 2),
        (100.0, 2),
        (101.0, 1),
        (110.0, 1),
        (111.0, 0),
        (219.0, 0),
        (220.0, 3),
    ] {
        assert_eq!(
            sub(
                News2Input {
                    sbp: Some(v),
                    ..Default::default()
                },
                "sbp"
            ),
            Some(want),
            "sbp {v}"
        );
    }
    for (v, want) in [
        (30.0, 3),
        (40.0, 3),
        (41.0, 1),
        (50.0, 1),
        (51.0, 0),
        (90.0, 0),
        (91.0, 1),
        (110.0, 1),
        (111.0, 2),
        (130.0, 2),
        (131.0, 3),
    ] {
        assert_eq!(
            sub(
                News2Input {
                    hr: Some(v),
                    ..Default::default()
                },
                "hr"
            ),
            Some(want),
            "hr {v}"
        );
    }
    for (c, want) in [
        (Consciousness::Alert, 0),
        (Consciousness::Confusion, 3),
        (Consciousness::Voice, 3),
        (Consciousness::Pain, 3),
        (Consciousness::Unresponsive, 3),
    ] {
        assert_eq!(
            sub(
                News2Input {
                    consciousness: Some(c),
                    ..Default::default()
                },
                "consciousness"
            ),
            Some(want),
            "{c:?}"
        );
    }
    for (v, want) in [
        (33.0, 3),
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (41.0, 2),
    ] {
        assert_eq!(
            sub(
                News2Input {
                    temp: Some(v),
                    ..Default::default()
                },
                "temp"
            ),
            Some(want),
            "temp {v}"
        );
    }
}

#[test]
fn news2_rounds_to_the_charts_resolution_halves_up() {
    for (v, want) in [
        (36.05, 0),
        (36.04, 1),
        (35.04, 3),
        (35.05, 1),
        (38.05, 1),
        (39.05, 2),
    ] {
        assert_eq!(
            sub(
                News2Input {
                    temp: Some(v),
                    ..Default::default()
                },
                "temp"
            ),
            Some(want),
            "temp {v}"
        );
    }
    for (v, want) in [(90.4, 0), (90.5, 1), (50.5, 0), (130.49, 2)] {
        assert_eq!(
            sub(
                News2Input {
                    hr: Some(v),
                    ..Default::default()
                },
                "hr"
            ),
            Some(want),
            "hr {v}"
        );
    }
    assert_eq!(
        sub(
            News2Input {
                spo2: Some(95.5),
                ..Default::default()
            },
            "spo2"
        ),
        Some(0)
    );
}

fn full(
    rr: f64,
    spo2: f64,
    o2: bool,
    sbp: f64,
    hr: f64,
    c: Consciousness,
    temp: f64,
) -> News2Input {
    News2Input {
        rr: Some(rr),
        spo2: Some(spo2),
        on_oxygen: Some(o2),
        sbp: Some(sbp),
        hr: Some(hr),
        consciousness: Some(c),
        temp: Some(temp),
        ..Default::default()
    }
}

#[test]
fn news2_chart_4_bands() {
    use Consciousness::*;
    let cases = [
        (
            full(16.0, 98.0, false, 120.0, 70.0, Alert, 37.0),
            0,
            RiskBand::Low,
        ),
        (
            full(21.0, 95.0, false, 105.0, 70.0, Alert, 37.0),
            4,
            RiskBand::Low,
        ),
        // One parameter at 3 with an aggregate below 5: low–medium.
        (
            full(25.0, 98.0, false, 120.0, 70.0, Alert, 37.0),
            3,
            RiskBand::LowMedium,
        ),
        (
            full(16.0, 98.0, false, 120.0, 70.0, Confusion, 37.0),
            3,
            RiskBand::LowMedium,
        ),
        (
            full(25.0, 95.0, false, 120.0, 70.0, Alert, 37.0),
            4,
            RiskBand::LowMedium,
        ),
        (
            full(21.0, 95.0, false, 105.0, 95.0, Alert, 37.0),
            5,
            RiskBand::Medium,
        ),
        (
            full(25.0, 95.0, false, 105.0, 70.0, Alert, 37.0),
            5,
            RiskBand::Medium,
        ),
        (
            full(21.0, 95.0, false, 105.0, 95.0, Alert, 38.5),
            6,
            RiskBand::Medium,
        ),
        (
            full(21.0, 95.0, true, 105.0, 95.0, Alert, 37.0),
            7,
            RiskBand::High,
        ),
        (
            full(5.0, 80.0, true, 80.0, 150.0, Unresponsive, 34.0),
            20,
            RiskBand::High,
        ),
    ];
    for (input, total, band) in cases {
        let r = news2::score(&input).unwrap();
        assert!(r.complete, "{input:?}");
        assert_eq!(
            (r.total, r.band),
            (Some(total), Some(band)),
            "{input:?} -> {:?}",
            r.subscores
        );
    }
}

#[test]
fn the_issue_example_scores_eight_high() {
    let input: News2Input = serde_json::from_value(json!({"rr":24,"spo2":93,"spo2_scale":1,"on_oxygen":false,"sbp":105,"hr":112,"consciousness":"A","temp":38.4})).unwrap();
    let r = news2::score(&input).unwrap();
    let subs: Vec<(&str, u8)> = r.subscores.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        subs,
        [
            ("air_or_oxygen", 0),
            ("consciousness", 0),
            ("hr", 2),
            ("rr", 2),
            ("sbp", 1),
            ("spo2", 2),
            ("temp", 1)
        ]
    );
    assert_eq!(
        (r.total, r.band, r.complete),
        (Some(8), Some(RiskBand::High), true)
    );
}

#[test]
fn news2_missing_values_are_listed_and_the_total_is_a_lower_bound() {
    let r = news2::score(&News2Input {
        rr: Some(26.0),
        hr: Some(120.0),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(r.total, Some(5));
    assert!(!r.complete);
    assert_eq!(
        r.missing,
        ["spo2", "air_or_oxygen", "sbp", "consciousness", "temp"]
    );
    let none = news2::score(&News2Input::default()).unwrap();
    assert_eq!(
        (none.total, none.subscores.len(), none.missing.len()),
        (Some(0), 0, 7)
    );
}

#[test]
fn news2_scope_children_and_pregnancy_are_flagged_not_scored() {
    let child = news2::score(&News2Input {
        age: Some(15.9),
        rr: Some(30.0),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(child.total, None);
    assert!(child.not_applicable.unwrap().contains("under 16"));
    let adult = news2::score(&News2Input {
        age: Some(16.0),
        rr: Some(30.0),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(adult.total, Some(3));
    let preg = news2::score(&News2Input {
        pregnant: Some(true),
        ..Default::default()
    })
    .unwrap();
    assert!(preg.not_applicable.unwrap().contains("pregnancy"));
}

#[test]
fn impossible_inputs_are_errors_that_say_why() {
    let e = news2::score(&News2Input {
        temp: Some(98.6),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("°F"), "{e}");
    assert!(matches!(
        news2::score(&News2Input {
            spo2: Some(101.0),
            ..Default::default()
        }),
        Err(InputError::OutOfRange {
            parameter: "spo2",
            ..
        })
    ));
    assert!(matches!(
        news2::score(&News2Input {
            hr: Some(f64::NAN),
            ..Default::default()
        }),
        Err(InputError::NotANumber { .. })
    ));
    assert!(
        news2::score(&News2Input {
            spo2_scale: Some(3),
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        serde_json::from_value::<News2Input>(json!({"heart_rate": 80})).is_err(),
        "a typo must not score as missing"
    );
    assert!(
        sirs::score(&sirs::SirsInput {
            paco2: Some(4.3),
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
        .contains("kPa")
    );
}

#[test]
fn qsofa_criteria_edges() {
    let q = |rr: f64, sbp: f64, gcs: f64| {
        qsofa::score(&qsofa::QsofaInput {
            rr: Some(rr),
            sbp: Some(sbp),
            gcs: Some(gcs),
            altered_mentation: None,
        })
        .unwrap()
    };
    assert_eq!(q(21.0, 101.0, 15.0).score, 0);
    assert_eq!(q(21.9, 100.1, 15.0).score, 0);
    assert_eq!(q(22.0, 101.0, 15.0).score, 1);
    assert_eq!(q(21.0, 100.0, 15.0).score, 1);
    assert_eq!(q(21.0, 101.0, 14.0).score, 1);
    let two = q(22.0, 100.0, 15.0);
    assert!(two.positive && two.complete && two.score == 2);
    assert_eq!(q(30.0, 80.0, 8.0).score, 3);
    // Partial qSOFA: respiratory rate and blood pressure only (no GCS).
    let partial = qsofa::score(&qsofa::QsofaInput {
        rr: Some(24.0),
        sbp: Some(95.0),
        ..Default::default()
    })
    .unwrap();
    assert!(partial.positive && !partial.complete);
    assert_eq!(partial.missing, ["mentation"]);
    let stated = qsofa::score(&qsofa::QsofaInput {
        altered_mentation: Some(true),
        gcs: Some(15.0),
        ..Default::default()
    })
    .unwrap();
    assert!(stated.criteria["mentation"]);
}

#[test]
fn sirs_criteria_edges_are_strict() {
    let s = |i: sirs::SirsInput| sirs::score(&i).unwrap();
    let base = sirs::SirsInput {
        temp: Some(37.0),
        hr: Some(80.0),
        rr: Some(16.0),
        paco2: Some(40.0),
        wbc: Some(8.0),
        bands_pct: Some(2.0),
    };
    assert_eq!(s(base.clone()).score, 0);
    for (t, met) in [(38.0, false), (38.01, true), (36.0, false), (35.99, true)] {
        assert_eq!(
            s(sirs::SirsInput {
                temp: Some(t),
                ..base.clone()
            })
            .criteria["temp"],
            met,
            "temp {t}"
        );
    }
    for (h, met) in [(90.0, false), (91.0, true)] {
        assert_eq!(
            s(sirs::SirsInput {
                hr: Some(h),
                ..base.clone()
            })
            .criteria["hr"],
            met,
            "hr {h}"
        );
    }
    for (rr, pa, met) in [(20.0, 32.0, false), (21.0, 40.0, true), (16.0, 31.9, true)] {
        assert_eq!(
            s(sirs::SirsInput {
                rr: Some(rr),
                paco2: Some(pa),
                ..base.clone()
            })
            .criteria["resp"],
            met,
            "rr {rr} paco2 {pa}"
        );
    }
    for (w, b, met) in [
        (12.0, 10.0, false),
        (12.1, 0.0, true),
        (4.0, 0.0, false),
        (3.9, 0.0, true),
        (8.0, 10.1, true),
    ] {
        assert_eq!(
            s(sirs::SirsInput {
                wbc: Some(w),
                bands_pct: Some(b),
                ..base.clone()
            })
            .criteria["wbc"],
            met,
            "wbc {w} bands {b}"
        );
    }
    let two = s(sirs::SirsInput {
        temp: Some(38.5),
        hr: Some(100.0),
        ..base.clone()
    });
    assert!(two.positive && two.score == 2 && two.complete);
    // One part met is enough; an unmet part with the other absent is undetermined.
    let partial = s(sirs::SirsInput {
        rr: Some(25.0),
        wbc: Some(8.0),
        ..Default::default()
    });
    assert!(partial.criteria["resp"]);
    assert_eq!(partial.missing, ["temp", "hr", "wbc"]);
}

proptest! {
    #[test]
    fn news2_total_is_the_sum_and_bands_follow_chart_4(
        rr in proptest::option::of(0.0f64..80.0), spo2 in proptest::option::of(50.0f64..100.0),
        o2 in proptest::option::of(any::<bool>()), scale in 1u8..=2, sbp in proptest::option::of(40.0f64..300.0),
        hr in proptest::option::of(20.0f64..250.0), temp in proptest::option::of(30.0f64..43.0), alert in proptest::option::of(any::<bool>()),
    ) {
        let input = News2Input { rr, spo2, spo2_scale: Some(scale), on_oxygen: o2, sbp, hr, temp,
            consciousness: alert.map(|a| if a { Consciousness::Alert } else { Consciousness::Voice }), ..Default::default() };
        let r = news2::score(&input).unwrap();
        let total = r.total.unwrap();
        prop_assert_eq!(u32::from(total), r.subscores.values().map(|&s| u32::from(s)).sum::<u32>());
        prop_assert!(total <= 20 && r.subscores.values().all(|&s| s <= 3));
        prop_assert_eq!(r.subscores.len() + r.missing.len(), 7);
        let band = r.band.unwrap();
        let want = if total >= 7 { RiskBand::High } else if total >= 5 { RiskBand::Medium }
            else if r.subscores.values().any(|&s| s == 3) { RiskBand::LowMedium } else { RiskBand::Low };
        prop_assert_eq!(band, want);
    }
}
