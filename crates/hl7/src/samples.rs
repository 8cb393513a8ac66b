//! Realistic sample messages for benchmarks, examples and documentation (not test oracles).

/// A 1.5 KB ORU^R01 (v2.5.1, UTF-8) with a patient, a visit, one order and 12 numeric OBX
/// results with UCUM units: the message the parse and HL7→FHIR benchmarks use.
pub fn oru_r01() -> String {
    let mut m = String::from(
        "MSH|^~\\&|LAB|GOOD HEALTH HOSPITAL|AORTA|AORTA|20260101120000||ORU^R01^ORU_R01|LAB000123|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
         PID|1||555-44-3333^^^GHH^MR~9999999^^^SSA^SS||EVERYWOMAN^EVE^E^^^^L||19620320|F|||2222 HOME STREET^^GREENSBORO^NC^27401^USA||(555)555-2004\r\
         PV1|1|I|ICU^101^1^GHH||||1234^ATTEND^AMY^^^^DR|||MED\r\
         ORC|RE|ORD448811^GHH|R-511^LAB||CM\r\
         OBR|1|ORD448811^GHH|R-511^LAB|24331-1^Lipid panel^LN|||20260101100000|||||||||1234^ATTEND^AMY^^^^DR||||||20260101115500|||F\r",
    );
    let tests = [
        ("2093-3", "Cholesterol", "196", "mg/dL"),
        ("2571-8", "Triglyceride", "150", "mg/dL"),
        ("2085-9", "HDL", "42", "mg/dL"),
        ("13457-7", "LDL calc", "124", "mg/dL"),
        ("8867-4", "Heart rate", "88", "/min"),
        ("8480-6", "Systolic BP", "132", "mm[Hg]"),
        ("8462-4", "Diastolic BP", "84", "mm[Hg]"),
        ("9279-1", "Resp rate", "18", "/min"),
        ("8310-5", "Body temp", "37.2", "Cel"),
        ("59408-5", "SpO2", "97", "%"),
        ("2524-7", "Lactate", "1.4", "mmol/L"),
        ("6690-2", "WBC", "7.9", "10*3/uL"),
    ];
    for (i, (code, name, v, unit)) in tests.iter().enumerate() {
        m.push_str(&format!(
            "OBX|{}|NM|{code}^{name}^LN||{v}|{unit}^{unit}^UCUM|<200|N|||F|||20260101115500|GHH LAB^^^^^CLIA&2.16.840.1.113883.4.7&ISO\r",
            i + 1
        ));
    }
    m
}
