//! The line tables of every compilation unit, flattened into one list of
//! rows sorted by address: address → `file:line`, and `file:line` →
//! addresses for breakpoints.

use std::path::{Path, PathBuf};

use gimli::Reader;

use super::{DwarfError, R};

/// A source file of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceFile {
    /// Where it was when the image was built.
    path: PathBuf,
    /// Its name relative to the build directory (`kvstore/kvstore.c`):
    /// what views show, the same on every machine.
    name: String,
}

/// One row of a line table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRow {
    /// First address of the row.
    pub addr: u64,
    /// Just past its last address.
    pub end: u64,
    /// Index of its file.
    pub file: usize,
    /// Its line (1-based).
    pub line: u32,
    /// Whether it is a recommended breakpoint place (a statement's start).
    pub is_stmt: bool,
}

/// A source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    /// The address the row starts at.
    pub addr: u64,
    /// Index of the file (see [`Program::file_path`](super::Program::file_path)).
    pub file: usize,
    /// The file's name relative to the build directory.
    pub file_name: String,
    /// The line.
    pub line: u32,
}

/// Every line-table row of an image.
#[derive(Debug, Default)]
pub(crate) struct LineTable {
    files: Vec<SourceFile>,
    rows: Vec<LineRow>,
}

fn text(dwarf: &gimli::Dwarf<R>, unit: &gimli::Unit<R>, v: gimli::AttributeValue<R>) -> Option<String> {
    let s = dwarf.attr_string(unit, v).ok()?;
    Some(s.to_string_lossy().ok()?.into_owned())
}

/// The full path of file `index` of a unit's line program, as the image
/// was built (the build directory joined with the file's directory and name).
pub(crate) fn file_path(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    header: &gimli::LineProgramHeader<R>,
    index: u64,
) -> Option<PathBuf> {
    let comp_dir = unit
        .comp_dir
        .as_ref()
        .and_then(|d| d.to_string_lossy().ok())
        .map(|d| PathBuf::from(d.as_ref()))
        .unwrap_or_default();
    let f = header.file(index)?;
    let name = text(dwarf, unit, f.path_name())?;
    let dir = f
        .directory(header)
        .and_then(|d| text(dwarf, unit, d))
        .unwrap_or_default();
    Some(comp_dir.join(dir).join(name))
}

impl LineTable {
    /// Reads every unit's line program.
    pub(crate) fn read(dwarf: &gimli::Dwarf<R>) -> Result<LineTable, DwarfError> {
        let mut table = LineTable::default();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            let Some(program) = unit.line_program.clone() else {
                continue;
            };
            let comp_dir = unit
                .comp_dir
                .as_ref()
                .and_then(|d| d.to_string_lossy().ok())
                .map(|d| PathBuf::from(d.as_ref()))
                .unwrap_or_default();
            // This unit's file indices → the table's.
            let mut file_map: Vec<Option<usize>> = Vec::new();
            let mut rows = program.rows();
            let mut pending: Option<LineRow> = None;
            while let Some((header, row)) = rows.next_row()? {
                let index = row.file_index() as usize;
                if file_map.len() <= index {
                    file_map.resize(index + 1, None);
                }
                if file_map[index].is_none() {
                    let file = file_path(dwarf, &unit, header, row.file_index());
                    file_map[index] = file.map(|path| table.file_index(&comp_dir, path));
                }
                let addr = row.address();
                if let Some(mut p) = pending.take() {
                    if addr > p.addr {
                        p.end = addr;
                        table.rows.push(p);
                    }
                }
                if row.end_sequence() {
                    continue;
                }
                let (Some(file), Some(line)) = (file_map[index], row.line()) else {
                    continue;
                };
                pending = Some(LineRow {
                    addr,
                    end: addr,
                    file,
                    line: u32::try_from(line.get()).unwrap_or(u32::MAX),
                    is_stmt: row.is_stmt(),
                });
            }
        }
        table.rows.sort_by_key(|r| (r.addr, r.end));
        Ok(table)
    }

    fn file_index(&mut self, comp_dir: &Path, path: PathBuf) -> usize {
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            return i;
        }
        let name = path
            .strip_prefix(comp_dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        self.files.push(SourceFile { path, name });
        self.files.len() - 1
    }

    /// The index and display name of the file at `path`.
    pub(crate) fn find_path(&self, path: &Path) -> Option<(usize, &str)> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| (i, self.files[i].name.as_str()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn path(&self, file: usize) -> Option<&Path> {
        self.files.get(file).map(|f| f.path.as_path())
    }

    fn source_line(&self, r: &LineRow) -> SourceLine {
        SourceLine {
            addr: r.addr,
            file: r.file,
            file_name: self.files.get(r.file).map(|f| f.name.clone()).unwrap_or_default(),
            line: r.line,
        }
    }

    /// The row covering `addr`.
    pub(crate) fn line_at(&self, addr: u64) -> Option<SourceLine> {
        let i = self.rows.partition_point(|r| r.addr <= addr);
        let r = self.rows[..i].iter().rev().take(4).find(|r| addr < r.end)?;
        Some(self.source_line(r))
    }

    /// The rows that start in `[start, end)`.
    pub(crate) fn rows_between(&self, start: u64, end: u64) -> Vec<SourceLine> {
        let from = self.rows.partition_point(|r| r.addr < start);
        self.rows[from..]
            .iter()
            .take_while(|r| r.addr < end)
            .map(|r| self.source_line(r))
            .collect()
    }

    /// The files whose name ends with `file` at a path-component boundary
    /// (`kvstore.c` matches `kvstore/kvstore.c`).
    fn files_named(&self, file: &str) -> Vec<usize> {
        let want = file.trim_start_matches("./");
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                let name = f.path.to_string_lossy();
                name == want || name.strip_suffix(want).is_some_and(|head| head.ends_with('/'))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The addresses where `file:line` starts: the first statement row of
    /// the line in each run of code (a line inlined twice has two). A line
    /// without code moves to the next line that has some, as gdb does.
    pub(crate) fn addresses_of(&self, file: &str, line: u64) -> Result<(u32, Vec<u64>), DwarfError> {
        let files = self.files_named(file);
        if files.is_empty() {
            return Err(DwarfError::NoSuchFile(file.to_string()));
        }
        let in_file = |r: &&LineRow| files.contains(&r.file);
        let target = self
            .rows
            .iter()
            .filter(in_file)
            .map(|r| r.line)
            .filter(|&l| u64::from(l) >= line)
            .min()
            .ok_or_else(|| DwarfError::NoCode {
                file: file.to_string(),
                line,
            })?;
        // Statement rows are the recommended places; at -O2 a line's only
        // statement row may be empty (its code moved among the prologue's),
        // and then any row of the line will do.
        let of_line = |r: &&LineRow| in_file(r) && r.line == target;
        let has_stmt = self.rows.iter().filter(of_line).any(|r| r.is_stmt);
        // Rows of that line, by address; a new run starts where the
        // previous row of the line does not end right before.
        let mut addrs: Vec<u64> = Vec::new();
        let mut last_end = None;
        for r in self
            .rows
            .iter()
            .filter(of_line)
            .filter(|r| r.is_stmt || !has_stmt)
        {
            if last_end != Some(r.addr) {
                addrs.push(r.addr);
            }
            last_end = Some(r.end);
        }
        Ok((target, addrs))
    }
}
