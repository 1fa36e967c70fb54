//! The body of an edit that attaches a file (an alert's chart) and changes nothing else:
//! multipart, with Discord's `payload_json` naming the new file.

use opsbot_commands::outbox::Attachment;

/// The multipart body of an edit that attaches one file and changes nothing else: Discord's
/// `payload_json` lists the new file under `attachments` (id 0 is `files[0]`).
pub fn attachment_edit_body(attachment: Option<&Attachment>) -> (String, Vec<u8>) {
    let boundary = format!("opsbot-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    if let Some(file) = attachment {
        let payload = serde_json::json!({
            "attachments": [{ "id": 0, "filename": file.filename }],
        });
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{payload}\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                file.filename
            )
            .as_bytes(),
        );
        body.extend_from_slice(&file.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
