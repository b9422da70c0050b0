//! `qXfer` reads: the target description, each VM's symbol file (so that
//! gdb loads every inferior's symbols by itself), and the thread list with
//! the VMs' names.

use crate::arch::target_xml;
use crate::proto::hex;
use crate::proto::reply::{error, xfer};
use crate::state::Target;

/// Escapes text for an XML attribute or element.
fn xml_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

impl Target {
    /// `qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH`.
    pub(crate) fn xfer_read(&mut self, object: &str, annex: &str, offset: u64, length: u64) -> Vec<u8> {
        let data = match object {
            "features" if annex == "target.xml" => Ok(target_xml().as_bytes().to_vec()),
            "features" => Err(format!(
                "no target description called '{annex}' (only target.xml)"
            )),
            "exec-file" => self.exec_file(annex),
            "threads" => Ok(self.threads_xml().into_bytes()),
            _ => return Vec::new(),
        };
        match data {
            Ok(data) => xfer(&data, offset, length),
            Err(e) => error(&e).into_bytes(),
        }
    }

    /// The image of process `annex` (hex; empty: the `Hg` thread's): the
    /// copy inside the trace, which is the image that ran.
    fn exec_file(&self, annex: &str) -> Result<Vec<u8>, String> {
        let vm = if annex.is_empty() {
            self.general
        } else {
            hex::number(annex.as_bytes())
                .and_then(|pid| self.vm_of_pid(pid))
                .ok_or_else(|| format!("no process '{annex}' in this trace"))?
        };
        let entry = &self.vms[vm as usize];
        let image = entry
            .image
            .as_ref()
            .ok_or_else(|| format!("the image copy of {} is missing from the trace", self.label(vm)))?;
        Ok(image.to_string_lossy().into_owned().into_bytes())
    }

    /// Every attached VM's thread, named after the VM. gdb reads this list
    /// after every stop, so it says nothing that needs the other VMs
    /// brought to the cursor (where each stands would make every
    /// `reverse-stepi` replay them all: `monitor vm` tells it instead).
    fn threads_xml(&self) -> String {
        let mut xml = String::from("<?xml version=\"1.0\"?>\n<threads>\n");
        for vm in self.attached() {
            xml.push_str(&format!(
                "<thread id=\"{}\" core=\"0\" name=\"{}\"/>\n",
                self.thread_of(vm),
                xml_text(&self.vms[vm as usize].name),
            ));
        }
        xml.push_str("</threads>\n");
        xml
    }
}

#[cfg(test)]
mod tests {
    use super::xml_text;

    #[test]
    fn xml_escaping() {
        assert_eq!(xml_text("a<b>&\"c'\n"), "a&lt;b&gt;&amp;&quot;c&apos; ");
    }
}
