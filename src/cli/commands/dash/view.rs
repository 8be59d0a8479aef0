//! How the dashboard is drawn full-screen: a title line, the table of VMs,
//! the selected VM's details, and a line of keys or the latest message; a
//! question in a box over it while one waits. Drawing is a pure function of
//! [`Dash`], so it is tested on ratatui's in-memory backend.

use std::time::{Instant, SystemTime};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::model::{COLUMNS, Dash, Pending, Tone};

/// The keys, as the bottom line lists them.
pub(crate) const KEYS: &str =
    "↑↓ select · enter shell · l logs · p snapshot · x destroy · r refresh · q quit";

/// Draws the whole screen.
pub(crate) fn draw(frame: &mut Frame<'_>, dash: &Dash, color: bool) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let [title, table, details, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(6),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let paint = |style: Style| if color { style } else { Style::new() };

    let surveyed = match dash.surveyed {
        Some(at) => format!(
            "providers asked {} ago",
            super::model::short(now.saturating_duration_since(at))
        ),
        None => "asking the providers…".to_string(),
    };
    let mut heading = vec![
        Span::styled("spuff dash", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            " · {} VM{} · {surveyed}",
            dash.rows.len(),
            if dash.rows.len() == 1 { "" } else { "s" }
        )),
    ];
    for (provider, error) in &dash.failures {
        heading.push(Span::styled(
            format!(" · {provider} unreachable: {error}"),
            paint(Style::new().fg(Color::Red)),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(heading)), title);

    let rows: Vec<Row<'_>> = dash
        .rows
        .iter()
        .map(|row| {
            let cells = dash.cells(row, now, wall);
            let stale = dash.agents.get(&row.entry.name).is_some_and(|a| {
                a.error.is_some() || a.sample.as_ref().is_some_and(|s| dash.stale(s, now))
            });
            let style = if dash.busy.contains_key(&row.entry.name) {
                paint(Style::new().fg(Color::Yellow))
            } else if row.record.is_none() || row.entry.provider_status.as_deref() != Some("active")
            {
                paint(Style::new().fg(Color::DarkGray))
            } else {
                Style::new()
            };
            Row::new(cells.into_iter().enumerate().map(|(i, text)| {
                // The agent's figures, when they are old, in grey.
                if stale && (5..12).contains(&i) {
                    Cell::from(text).style(paint(Style::new().fg(Color::DarkGray)))
                } else {
                    Cell::from(text)
                }
            }))
            .style(style)
        })
        .collect();
    let widths = [
        Constraint::Min(12),
        Constraint::Length(12),
        Constraint::Length(14),
        Constraint::Length(15),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(17),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(11),
    ];
    let table_widget = Table::new(rows, widths)
        .header(Row::new(COLUMNS).style(Style::new().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ")
        .block(Block::bordered().title(" VMs "));
    let mut state =
        TableState::default().with_selected((!dash.rows.is_empty()).then_some(dash.selected));
    frame.render_stateful_widget(table_widget, table, &mut state);
    if dash.rows.is_empty() && dash.surveyed.is_some() {
        let inner = Block::bordered().inner(table);
        let empty = Rect {
            y: inner.y + 1,
            height: inner.height.saturating_sub(1),
            ..inner
        };
        frame.render_widget(
            Paragraph::new(
                "No VMs. Create one with `spuff up`; this view shows it when it appears.",
            ),
            empty,
        );
    }

    let text: Vec<Line<'_>> = match dash.current() {
        Some(row) => dash
            .details(row, now, wall)
            .into_iter()
            .map(Line::from)
            .collect(),
        None => Vec::new(),
    };
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" Details ")),
        details,
    );

    let bottom = match &dash.message {
        Some((text, tone, _)) => {
            let style = match tone {
                Tone::Info => Style::new(),
                Tone::Good => Style::new().fg(Color::Green),
                Tone::Bad => Style::new().fg(Color::Red),
            };
            Line::from(vec![
                Span::styled(text.clone(), paint(style)),
                Span::styled(
                    format!("  ({KEYS})"),
                    paint(Style::new().fg(Color::DarkGray)),
                ),
            ])
        }
        None => Line::from(KEYS),
    };
    frame.render_widget(Paragraph::new(bottom), footer);

    if let Some(pending) = &dash.pending {
        let (title_text, body) = match pending {
            Pending::Destroy(name) => (
                " Destroy ",
                format!(
                    "Destroy {}? Its disk and everything on it goes; this cannot be undone.\n\n\
                     y: destroy   any other key: keep it",
                    spuff::terminal_safe(name)
                ),
            ),
            Pending::Snapshot(name) => (
                " Snapshot ",
                format!(
                    "Snapshot {} as {}? Providers may bill for stored snapshots.\n\n\
                     y: snapshot   any other key: cancel",
                    spuff::terminal_safe(name),
                    spuff::terminal_safe(&spuff::vm::snapshot::default_name(name))
                ),
            ),
        };
        let area = centered(frame.area(), 64, 7);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(body)
                .wrap(Wrap { trim: true })
                .block(Block::bordered().title(title_text)),
            area,
        );
    }
}

/// A `width` × `height` box in the middle of `area` (smaller if it must).
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use spuff::state::Lifecycle;
    use spuff::vm::{Entry, Tracking};

    use super::*;
    use crate::cli::commands::dash::model::Row as DashRow;

    fn screen(dash: &Dash) -> String {
        let mut terminal = Terminal::new(TestBackend::new(140, 20)).expect("terminal");
        terminal.draw(|f| draw(f, dash, false)).expect("draw");
        let buffer = terminal.backend().buffer().clone();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn row(name: &str) -> DashRow {
        DashRow {
            entry: Entry {
                name: name.into(),
                provider: "hetzner".into(),
                provider_id: "42".into(),
                tracking: Tracking::Orphan,
                local_status: Some(Lifecycle::Ready),
                provider_status: Some("active".into()),
                ip: None,
                region: "fsn1".into(),
                size: "cx22".into(),
                active: false,
            },
            record: None,
        }
    }

    #[test]
    fn the_screen_should_show_the_table_details_and_keys() {
        let mut dash = Dash::new(Duration::from_secs(5));
        dash.surveyed = Some(Instant::now());
        dash.set_rows(vec![row("web\x1b[2J"), row("db")]);
        let text = screen(&dash);
        assert!(text.contains("spuff dash · 2 VMs"), "{text}");
        assert!(text.contains("NAME"), "{text}");
        // A hostile name is shown escaped, never sent to the terminal.
        assert!(text.contains("web\\x1b[2J"), "{text}");
        assert!(text.contains("orphan: not in local state"), "{text}");
        assert!(text.contains("q quit"), "{text}");
    }

    #[test]
    fn a_question_should_be_drawn_over_the_table() {
        let mut dash = Dash::new(Duration::from_secs(5));
        dash.set_rows(vec![row("web")]);
        dash.pending = Some(Pending::Destroy("web".into()));
        let text = screen(&dash);
        assert!(text.contains("Destroy web?"), "{text}");
        assert!(text.contains("y: destroy"), "{text}");
    }

    #[test]
    fn an_empty_survey_should_say_how_to_make_a_vm() {
        let mut dash = Dash::new(Duration::from_secs(5));
        dash.surveyed = Some(Instant::now());
        dash.failures.push(("aws".into(), "timed out".into()));
        let text = screen(&dash);
        assert!(
            text.contains("No VMs. Create one with `spuff up`"),
            "{text}"
        );
        assert!(text.contains("aws unreachable: timed out"), "{text}");
    }
}
