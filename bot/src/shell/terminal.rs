//! The shell's terminal: lines in (with line editing and history on a terminal, plain lines
//! from a pipe) and text out. On a terminal the prompt is shown only when the shell asks for
//! the next line, that is after the answer to the last one; anything printed while the
//! prompt is up (a background post, a late edit) goes above it, through rustyline's external
//! printer, so it never lands in the middle of what you are typing.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

type Printer = Box<dyn rustyline::ExternalPrinter + Send>;

/// Where the shell's output goes: stdout, or above the prompt on a terminal.
#[derive(Clone, Default)]
pub(super) struct Screen {
    printer: Option<Arc<Mutex<Printer>>>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen")
            .field("above_prompt", &self.printer.is_some())
            .finish()
    }
}

impl Screen {
    /// Prints `text` and a newline.
    pub(super) fn line(&self, text: &str) {
        if let Some(printer) = &self.printer
            && let Ok(mut printer) = printer.lock()
            && printer.print(format!("{text}\n")).is_ok()
        {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// The lines typed; [`Lines::next`] is also what puts the prompt up.
#[derive(Debug)]
pub(super) struct Lines {
    lines: mpsc::UnboundedReceiver<String>,
    ready: std::sync::mpsc::Sender<()>,
}

impl Lines {
    /// The next line (`None` at end of input). On a terminal the prompt appears now.
    pub(super) async fn next(&mut self) -> Option<String> {
        let _ = self.ready.send(());
        self.lines.recv().await
    }
}

/// Starts reading stdin on a thread of its own; the screen to print on goes with it.
pub(super) async fn open(interactive: bool) -> (Lines, Screen) {
    let (tx, lines) = mpsc::unbounded_channel();
    let (ready, wanted) = std::sync::mpsc::channel::<()>();
    let (printer_tx, printer_rx) = tokio::sync::oneshot::channel::<Option<Printer>>();
    std::thread::spawn(move || {
        if interactive {
            let Ok(mut editor) = rustyline::DefaultEditor::new() else {
                let _ = printer_tx.send(None);
                return;
            };
            let printer = editor
                .create_external_printer()
                .ok()
                .map(|p| Box::new(p) as Printer);
            let _ = printer_tx.send(printer);
            // One prompt per line asked for: never before the last answer is out.
            while wanted.recv().is_ok() {
                let Ok(line) = editor.readline("opsbot> ") else {
                    return;
                };
                let _ = editor.add_history_entry(line.as_str());
                if tx.send(line).is_err() {
                    return;
                }
            }
        } else {
            let _ = printer_tx.send(None);
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        }
    });
    let printer = printer_rx.await.ok().flatten();
    let screen = Screen {
        printer: printer.map(|p| Arc::new(Mutex::new(p))),
    };
    (Lines { lines, ready }, screen)
}
