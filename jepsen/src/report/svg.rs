//! A minimal SVG plot frame: a time axis in seconds, a linear or log10 value axis, shaded fault
//! windows, points, lines and a legend. Just enough for the two report plots, with no plotting
//! dependency and no scripts, so the page renders anywhere.

use std::fmt::Write;

use super::html::esc;

pub(crate) const OK: &str = "#3465a4";
pub(crate) const FAIL: &str = "#cc0000";
pub(crate) const INFO: &str = "#f57900";
const FAULT_COLORS: [&str; 6] = ["#fcaf3e", "#ad7fa8", "#8ae234", "#729fcf", "#e9b96e", "#ef2929"];

/// Fill color for the `i`-th distinct fault name.
pub(crate) fn fault_color(i: usize) -> &'static str {
    FAULT_COLORS[i % FAULT_COLORS.len()]
}

pub(crate) enum Scale {
    Linear {
        max: f64,
    },
    /// Decades `10^min_exp ..= 10^max_exp`.
    Log {
        min_exp: i32,
        max_exp: i32,
    },
}

/// A fault window to shade, in seconds from the start of the run.
pub(crate) struct Shade<'a> {
    pub from: f64,
    pub to: f64,
    pub label: &'a str,
    pub color: &'a str,
}

pub(crate) struct Frame {
    width: f64,
    height: f64,
    x_max: f64,
    y: Scale,
}

const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 45.0;

impl Frame {
    pub(crate) fn new(x_max: f64, y: Scale) -> Self {
        Self { width: 1000.0, height: 330.0, x_max: x_max.max(1e-3), y }
    }

    fn plot_w(&self) -> f64 {
        self.width - LEFT - RIGHT
    }

    fn plot_h(&self) -> f64 {
        self.height - TOP - BOTTOM
    }

    pub(crate) fn px(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max).clamp(0.0, 1.0) * self.plot_w()
    }

    pub(crate) fn py(&self, y: f64) -> f64 {
        let frac = match self.y {
            Scale::Linear { max } => y / max.max(1e-9),
            Scale::Log { min_exp, max_exp } => {
                let l = y.max(10f64.powi(min_exp)).log10();
                (l - f64::from(min_exp)) / f64::from((max_exp - min_exp).max(1))
            }
        };
        TOP + (1.0 - frac.clamp(0.0, 1.0)) * self.plot_h()
    }

    /// Opens the `<svg>` element, with a title for screen readers and above the plot.
    pub(crate) fn begin(&self, id: &str, title: &str) -> String {
        let (w, h) = (self.width, self.height);
        format!(
            "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">\
             <title>{t}</title><rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\
             <text x=\"{LEFT}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{t}</text>\n",
            t = esc(title)
        )
    }

    pub(crate) fn end(&self) -> &'static str {
        "</svg>\n"
    }

    /// Shaded fault windows. A window is labelled in place only when the label fits inside it;
    /// [`Frame::fault_legend`] names the colors either way, and every band has a hover title.
    pub(crate) fn shade(&self, windows: &[Shade<'_>]) -> String {
        let mut out = String::new();
        for (i, w) in windows.iter().enumerate() {
            let (x0, x1) = (self.px(w.from), self.px(w.to));
            let (label, width) = (esc(w.label), (x1 - x0).max(1.0));
            let _ = write!(
                out,
                "<g class=\"fault\"><title>{label}: {:.2} s to {:.2} s</title><rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"{}\" fill-opacity=\"0.3\"/>",
                w.from,
                w.to,
                self.plot_h(),
                w.color
            );
            if width >= 6.5 * w.label.chars().count() as f64 + 4.0 {
                let y = TOP + 11.0 + 11.0 * (i % 2) as f64;
                let _ = write!(out, "<text x=\"{:.1}\" y=\"{y:.1}\" fill=\"#333\">{label}</text>", x0 + 2.0);
            }
            out.push_str("</g>\n");
        }
        out
    }

    /// Names the fault colors, on the row under the title.
    pub(crate) fn fault_legend(&self, faults: &[(&str, &str)]) -> String {
        let mut out = String::new();
        let mut x = LEFT;
        for (name, color) in faults {
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{color}\" fill-opacity=\"0.5\"/><text x=\"{:.1}\" y=\"35\">{}</text>",
                x + 14.0,
                esc(name)
            );
            x += 24.0 + 6.5 * name.chars().count() as f64;
        }
        out.push('\n');
        out
    }

    /// Axis lines, ticks, grid and labels.
    pub(crate) fn axes(&self, x_label: &str, y_label: &str) -> String {
        let mut out = String::new();
        let (bottom, right) = (TOP + self.plot_h(), LEFT + self.plot_w());
        let _ = writeln!(
            out,
            "<g stroke=\"#333\"><line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/>\
             <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\"/></g>"
        );
        let step = nice_step(self.x_max, 10.0);
        for x in (0..).map(|i| f64::from(i) * step).take_while(|x| *x <= self.x_max + step * 1e-9) {
            let p = self.px(x);
            let _ = writeln!(
                out,
                "<line x1=\"{p:.1}\" y1=\"{bottom}\" x2=\"{p:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
                 <text x=\"{p:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                bottom + 4.0,
                bottom + 16.0,
                trim(x)
            );
        }
        for (y, label) in self.y_ticks() {
            let p = self.py(y);
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" y1=\"{p:.1}\" x2=\"{right}\" y2=\"{p:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
                LEFT - 4.0,
                p + 4.0
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            LEFT + self.plot_w() / 2.0,
            self.height - 8.0,
            esc(x_label),
            TOP + self.plot_h() / 2.0,
            esc(y_label)
        );
        out
    }

    fn y_ticks(&self) -> Vec<(f64, String)> {
        match self.y {
            Scale::Linear { max } => {
                let step = nice_step(max, 6.0);
                (0..)
                    .map(|i| f64::from(i) * step)
                    .take_while(|y| *y <= max * (1.0 + 1e-9))
                    .map(|y| (y, trim(y)))
                    .collect()
            }
            Scale::Log { min_exp, max_exp } => {
                let label = |e: i32| match usize::try_from(-e) {
                    Ok(decimals) => format!("{:.decimals$}", 10f64.powi(e)),
                    Err(_) => format!("{:.0}", 10f64.powi(e)),
                };
                (min_exp..=max_exp).map(|e| (10f64.powi(e), label(e))).collect()
            }
        }
    }

    pub(crate) fn dot(&self, x: f64, y: f64, color: &str) -> String {
        format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\" fill=\"{color}\"/>", self.px(x), self.py(y))
    }

    /// A step line: each `(x, y)` holds `y` from `x` to the next point's `x`, the last one to `x_end`.
    pub(crate) fn steps(&self, points: &[(f64, f64)], x_end: f64, color: &str) -> String {
        let mut d = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            let (px, py) = (self.px(*x), self.py(*y));
            if i == 0 {
                let _ = write!(d, "M{px:.1},{py:.1}");
            } else {
                let _ = write!(d, " H{px:.1} V{py:.1}");
            }
        }
        if !points.is_empty() {
            let _ = write!(d, " H{:.1}", self.px(x_end));
        }
        format!("<path d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>\n")
    }

    /// A legend in the top-right corner.
    pub(crate) fn legend(&self, items: &[(&str, &str)]) -> String {
        let mut out = String::new();
        let mut x = self.width - RIGHT - 70.0 * items.len() as f64;
        for (label, color) in items {
            let _ = write!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"14\" r=\"4\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"18\">{}</text>",
                x + 7.0,
                esc(label)
            );
            x += 70.0;
        }
        out.push('\n');
        out
    }
}

/// A 1-2-5 step giving about `ticks` ticks over `0..=max`.
pub(crate) fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A tick label without float noise: `0.5`, `20`, `0.001`.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".to_string() } else { s.to_string() }
}
