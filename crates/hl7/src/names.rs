//! Field names of the segments Aorta's users look at most, for message viewers and error
//! messages. Names follow the HL7 v2.5.1 segment definitions (Chapter 2: MSH, MSA, ERR, NTE;
//! Chapter 3: EVN, PID, PV1, NK1, AL1, DG1; Chapter 4: ORC, RXA; Chapter 7: OBR, OBX, SPM).
//! Fields a later version added or withdrew keep their 2.5.1 name; a field past the table is
//! unnamed (`None`), never guessed.

const MSH: &[&str] = &[
    "Field Separator", "Encoding Characters", "Sending Application", "Sending Facility",
    "Receiving Application", "Receiving Facility", "Date/Time of Message", "Security",
    "Message Type", "Message Control ID", "Processing ID", "Version ID", "Sequence Number",
    "Continuation Pointer", "Accept Acknowledgment Type", "Application Acknowledgment Type",
    "Country Code", "Character Set", "Principal Language of Message",
    "Alternate Character Set Handling Scheme", "Message Profile Identifier",
];
const MSA: &[&str] = &[
    "Acknowledgment Code", "Message Control ID", "Text Message", "Expected Sequence Number",
    "Delayed Acknowledgment Type", "Error Condition",
];
const ERR: &[&str] = &[
    "Error Code and Location", "Error Location", "HL7 Error Code", "Severity",
    "Application Error Code", "Application Error Parameter", "Diagnostic Information",
    "User Message",
];
const NTE: &[&str] = &["Set ID", "Source of Comment", "Comment", "Comment Type"];
const EVN: &[&str] = &[
    "Event Type Code", "Recorded Date/Time", "Date/Time Planned Event", "Event Reason Code",
    "Operator ID", "Event Occurred", "Event Facility",
];
const PID: &[&str] = &[
    "Set ID", "Patient ID", "Patient Identifier List", "Alternate Patient ID", "Patient Name",
    "Mother's Maiden Name", "Date/Time of Birth", "Administrative Sex", "Patient Alias", "Race",
    "Patient Address", "County Code", "Phone Number - Home", "Phone Number - Business",
    "Primary Language", "Marital Status", "Religion", "Patient Account Number",
    "SSN Number - Patient", "Driver's License Number - Patient", "Mother's Identifier",
    "Ethnic Group", "Birth Place", "Multiple Birth Indicator", "Birth Order", "Citizenship",
    "Veterans Military Status", "Nationality", "Patient Death Date and Time",
    "Patient Death Indicator", "Identity Unknown Indicator", "Identity Reliability Code",
    "Last Update Date/Time", "Last Update Facility", "Species Code", "Breed Code", "Strain",
    "Production Class Code", "Tribal Citizenship",
];
const PV1: &[&str] = &[
    "Set ID", "Patient Class", "Assigned Patient Location", "Admission Type", "Preadmit Number",
    "Prior Patient Location", "Attending Doctor", "Referring Doctor", "Consulting Doctor",
    "Hospital Service", "Temporary Location", "Preadmit Test Indicator",
    "Re-admission Indicator", "Admit Source", "Ambulatory Status", "VIP Indicator",
    "Admitting Doctor", "Patient Type", "Visit Number", "Financial Class",
    "Charge Price Indicator", "Courtesy Code", "Credit Rating", "Contract Code",
    "Contract Effective Date", "Contract Amount", "Contract Period", "Interest Code",
    "Transfer to Bad Debt Code", "Transfer to Bad Debt Date", "Bad Debt Agency Code",
    "Bad Debt Transfer Amount", "Bad Debt Recovery Amount", "Delete Account Indicator",
    "Delete Account Date", "Discharge Disposition", "Discharged to Location", "Diet Type",
    "Servicing Facility", "Bed Status", "Account Status", "Pending Location",
    "Prior Temporary Location", "Admit Date/Time", "Discharge Date/Time",
    "Current Patient Balance", "Total Charges", "Total Adjustments", "Total Payments",
    "Alternate Visit ID", "Visit Indicator", "Other Healthcare Provider",
];
const NK1: &[&str] = &[
    "Set ID", "Name", "Relationship", "Address", "Phone Number", "Business Phone Number",
    "Contact Role", "Start Date", "End Date",
];
const AL1: &[&str] = &[
    "Set ID", "Allergen Type Code", "Allergen Code/Mnemonic/Description",
    "Allergy Severity Code", "Allergy Reaction Code", "Identification Date",
];
const DG1: &[&str] = &[
    "Set ID", "Diagnosis Coding Method", "Diagnosis Code", "Diagnosis Description",
    "Diagnosis Date/Time", "Diagnosis Type",
];
const ORC: &[&str] = &[
    "Order Control", "Placer Order Number", "Filler Order Number", "Placer Group Number",
    "Order Status", "Response Flag", "Quantity/Timing", "Parent", "Date/Time of Transaction",
    "Entered By", "Verified By", "Ordering Provider", "Enterer's Location",
    "Call Back Phone Number", "Order Effective Date/Time", "Order Control Code Reason",
    "Entering Organization", "Entering Device", "Action By", "Advanced Beneficiary Notice Code",
    "Ordering Facility Name", "Ordering Facility Address", "Ordering Facility Phone Number",
    "Ordering Provider Address",
];
const OBR: &[&str] = &[
    "Set ID", "Placer Order Number", "Filler Order Number", "Universal Service Identifier",
    "Priority", "Requested Date/Time", "Observation Date/Time", "Observation End Date/Time",
    "Collection Volume", "Collector Identifier", "Specimen Action Code", "Danger Code",
    "Relevant Clinical Information", "Specimen Received Date/Time", "Specimen Source",
    "Ordering Provider", "Order Callback Phone Number", "Placer Field 1", "Placer Field 2",
    "Filler Field 1", "Filler Field 2", "Results Rpt/Status Chng - Date/Time",
    "Charge to Practice", "Diagnostic Serv Sect ID", "Result Status", "Parent Result",
    "Quantity/Timing", "Result Copies To", "Parent", "Transportation Mode",
    "Reason for Study", "Principal Result Interpreter",
];
const OBX: &[&str] = &[
    "Set ID", "Value Type", "Observation Identifier", "Observation Sub-ID", "Observation Value",
    "Units", "References Range", "Abnormal Flags", "Probability", "Nature of Abnormal Test",
    "Observation Result Status", "Effective Date of Reference Range", "User Defined Access Checks",
    "Date/Time of the Observation", "Producer's ID", "Responsible Observer",
    "Observation Method", "Equipment Instance Identifier", "Date/Time of the Analysis",
    "Reserved 20", "Reserved 21", "Reserved 22", "Performing Organization Name",
    "Performing Organization Address", "Performing Organization Medical Director",
];
const SPM: &[&str] = &[
    "Set ID", "Specimen ID", "Specimen Parent IDs", "Specimen Type", "Specimen Type Modifier",
    "Specimen Additives", "Specimen Collection Method", "Specimen Source Site",
    "Specimen Source Site Modifier", "Specimen Collection Site", "Specimen Role",
    "Specimen Collection Amount", "Grouped Specimen Count", "Specimen Description",
    "Specimen Handling Code", "Specimen Risk Code", "Specimen Collection Date/Time",
    "Specimen Received Date/Time", "Specimen Expiration Date/Time", "Specimen Availability",
    "Specimen Reject Reason", "Specimen Quality", "Specimen Appropriateness",
    "Specimen Condition", "Specimen Current Quantity", "Number of Specimen Containers",
    "Container Type", "Container Condition", "Specimen Child Role",
];
const RXA: &[&str] = &[
    "Give Sub-ID Counter", "Administration Sub-ID Counter", "Date/Time Start of Administration",
    "Date/Time End of Administration", "Administered Code", "Administered Amount",
    "Administered Units", "Administered Dosage Form", "Administration Notes",
    "Administering Provider", "Administered-at Location", "Administered Per (Time Unit)",
    "Administered Strength", "Administered Strength Units", "Substance Lot Number",
    "Substance Expiration Date", "Substance Manufacturer Name", "Substance/Treatment Refusal Reason",
    "Indication", "Completion Status", "Action Code", "System Entry Date/Time",
];

/// The long name of a segment.
pub fn segment_name(id: &str) -> Option<&'static str> {
    Some(match id {
        "MSH" => "Message Header",
        "MSA" => "Message Acknowledgment",
        "ERR" => "Error",
        "NTE" => "Notes and Comments",
        "EVN" => "Event Type",
        "PID" => "Patient Identification",
        "PV1" => "Patient Visit",
        "NK1" => "Next of Kin / Associated Parties",
        "AL1" => "Patient Allergy Information",
        "DG1" => "Diagnosis",
        "ORC" => "Common Order",
        "OBR" => "Observation Request",
        "OBX" => "Observation/Result",
        "SPM" => "Specimen",
        "RXA" => "Pharmacy/Treatment Administration",
        _ => return None,
    })
}

/// The name of field `n` (HL7 numbering, from 1) of segment `id`.
pub fn field_name(id: &str, n: usize) -> Option<&'static str> {
    let table = match id {
        "MSH" => MSH,
        "MSA" => MSA,
        "ERR" => ERR,
        "NTE" => NTE,
        "EVN" => EVN,
        "PID" => PID,
        "PV1" => PV1,
        "NK1" => NK1,
        "AL1" => AL1,
        "DG1" => DG1,
        "ORC" => ORC,
        "OBR" => OBR,
        "OBX" => OBX,
        "SPM" => SPM,
        "RXA" => RXA,
        _ => return None,
    };
    n.checked_sub(1).and_then(|i| table.get(i)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_fields_have_their_standard_names() {
        assert_eq!(field_name("MSH", 9), Some("Message Type"));
        assert_eq!(field_name("MSH", 10), Some("Message Control ID"));
        assert_eq!(field_name("PID", 3), Some("Patient Identifier List"));
        assert_eq!(field_name("PID", 5), Some("Patient Name"));
        assert_eq!(field_name("PID", 7), Some("Date/Time of Birth"));
        assert_eq!(field_name("PID", 11), Some("Patient Address"));
        assert_eq!(field_name("PV1", 3), Some("Assigned Patient Location"));
        assert_eq!(field_name("PV1", 19), Some("Visit Number"));
        assert_eq!(field_name("PV1", 44), Some("Admit Date/Time"));
        assert_eq!(field_name("OBR", 7), Some("Observation Date/Time"));
        assert_eq!(field_name("OBR", 25), Some("Result Status"));
        assert_eq!(field_name("OBX", 5), Some("Observation Value"));
        assert_eq!(field_name("OBX", 14), Some("Date/Time of the Observation"));
        assert_eq!(field_name("OBX", 23), Some("Performing Organization Name"));
        assert_eq!(field_name("SPM", 4), Some("Specimen Type"));
        assert_eq!(field_name("SPM", 17), Some("Specimen Collection Date/Time"));
        assert_eq!(field_name("ORC", 12), Some("Ordering Provider"));
        assert_eq!(field_name("RXA", 5), Some("Administered Code"));
        assert_eq!(field_name("PID", 0), None);
        assert_eq!(field_name("PID", 400), None);
        assert_eq!(field_name("ZXY", 1), None);
    }
}
