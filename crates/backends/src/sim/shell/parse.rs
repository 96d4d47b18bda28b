//! The shell's grammar: words (quotes, backslashes, `$` expansions kept for run time) and the
//! `;` / newline / `&&` / `||` lists that join commands. Constructs the simulated shell does not
//! run (pipes, redirections, `&`, subshells, command substitution) are syntax errors here, so a
//! script is never half-understood.

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Lit(String),
    /// `$NAME`; `?` is the last status. Expanded when the command runs.
    Var(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Word {
    pub(super) parts: Vec<Part>,
    /// Any quotes in the word: then it is an argument even when it expands to nothing.
    pub(super) quoted: bool,
}

impl Word {
    fn lit(&mut self, c: char) {
        match self.parts.last_mut() {
            Some(Part::Lit(s)) => s.push(c),
            _ => self.parts.push(Part::Lit(c.to_string())),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(Word),
    And,
    Or,
    Semi,
    Newline,
}

/// How a command is tied to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Conn {
    Always,
    IfOk,
    IfFailed,
}

#[derive(Debug)]
pub(super) struct Command {
    pub(super) conn: Conn,
    pub(super) words: Vec<Word>,
}

fn unsupported(what: &str) -> String {
    format!("{what} not supported by the simulated shell")
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word: Option<Word> = None;
    let mut chars = src.chars().peekable();
    fn finish(tokens: &mut Vec<Token>, word: &mut Option<Word>) {
        if let Some(w) = word.take() {
            tokens.push(Token::Word(w));
        }
    }
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' => finish(&mut tokens, &mut word),
            '\n' => {
                finish(&mut tokens, &mut word);
                tokens.push(Token::Newline);
            }
            '#' if word.is_none() => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' => {
                finish(&mut tokens, &mut word);
                tokens.push(Token::Semi);
            }
            '&' => {
                finish(&mut tokens, &mut word);
                if chars.next_if_eq(&'&').is_none() {
                    return Err(unsupported("'&' (background jobs) is"));
                }
                tokens.push(Token::And);
            }
            '|' => {
                finish(&mut tokens, &mut word);
                if chars.next_if_eq(&'|').is_none() {
                    return Err(unsupported("'|' (pipes) is"));
                }
                tokens.push(Token::Or);
            }
            '<' | '>' => return Err(unsupported(&format!("'{c}' (redirection) is"))),
            '(' | ')' => return Err(unsupported(&format!("'{c}' (subshells) is"))),
            '`' => return Err(unsupported("'`' (command substitution) is")),
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_default().lit(c),
                None => word.get_or_insert_default().lit('\\'),
            },
            '\'' => {
                let w = word.get_or_insert_default();
                w.quoted = true;
                w.parts.push(Part::Lit(String::new()));
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.lit(c),
                        None => return Err("no closing quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_default();
                w.quoted = true;
                w.parts.push(Part::Lit(String::new()));
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some('\n') => {
                                chars.next();
                            }
                            Some(&c) if matches!(c, '$' | '`' | '"' | '\\') => {
                                chars.next();
                                w.lit(c);
                            }
                            _ => w.lit('\\'),
                        },
                        Some('$') => dollar(&mut chars, w)?,
                        Some('`') => return Err(unsupported("'`' (command substitution) is")),
                        Some(c) => w.lit(c),
                        None => return Err("no closing quote".into()),
                    }
                }
            }
            '$' => dollar(&mut chars, word.get_or_insert_default())?,
            c => word.get_or_insert_default().lit(c),
        }
    }
    finish(&mut tokens, &mut word);
    Ok(tokens)
}

/// Reads what follows a `$` into `w`.
fn dollar(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    w: &mut Word,
) -> Result<(), String> {
    let is_name_start = |c: &char| c.is_ascii_alphabetic() || *c == '_';
    match chars.peek() {
        Some('?') => {
            chars.next();
            w.parts.push(Part::Var("?".into()));
        }
        Some('(') => return Err(unsupported("'$(' (command substitution) is")),
        Some('{') => {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(c) => name.push(c),
                    None => return Err("no closing '}'".into()),
                }
            }
            let valid = name == "?"
                || (name.chars().next().is_some_and(|c| is_name_start(&c))
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            if !valid {
                return Err(format!("${{{name}}}: bad substitution"));
            }
            w.parts.push(Part::Var(name));
        }
        Some(c) if is_name_start(c) => {
            let mut name = String::new();
            while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                name.push(c);
            }
            w.parts.push(Part::Var(name));
        }
        _ => w.lit('$'),
    }
    Ok(())
}

pub(super) fn parse(src: &str) -> Result<Vec<Command>, String> {
    let mut commands = Vec::new();
    let mut words = Vec::new();
    let mut conn = Conn::Always;
    let mut need_command = false;
    for token in tokenize(src)? {
        match token {
            Token::Word(w) => words.push(w),
            Token::Newline | Token::Semi if words.is_empty() => {
                if token == Token::Semi {
                    return Err("';' unexpected".into());
                }
            }
            Token::Newline | Token::Semi => {
                commands.push(Command {
                    conn,
                    words: std::mem::take(&mut words),
                });
                conn = Conn::Always;
                need_command = false;
            }
            Token::And | Token::Or => {
                let op = if token == Token::And { "&&" } else { "||" };
                if words.is_empty() {
                    return Err(format!("'{op}' unexpected"));
                }
                commands.push(Command {
                    conn,
                    words: std::mem::take(&mut words),
                });
                conn = if token == Token::And {
                    Conn::IfOk
                } else {
                    Conn::IfFailed
                };
                need_command = true;
            }
        }
    }
    if !words.is_empty() {
        commands.push(Command { conn, words });
    } else if need_command {
        return Err("unexpected end of script".into());
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<Vec<String>> {
        let shell_status = 0;
        parse(src)
            .unwrap()
            .iter()
            .map(|c| {
                c.words
                    .iter()
                    .map(|w| {
                        w.parts
                            .iter()
                            .map(|p| match p {
                                Part::Lit(l) => l.clone(),
                                Part::Var(v) if v == "?" => shell_status.to_string(),
                                Part::Var(v) => format!("<{v}>"),
                            })
                            .collect::<String>()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn quoting_and_escapes_make_words() {
        assert_eq!(
            words(r#"echo 'a b' "c d" e\ f g"h"'i' "\$x \"q\" \n" '\n'"#),
            vec![vec![
                "echo",
                "a b",
                "c d",
                "e f",
                "ghi",
                r#"$x "q" \n"#,
                r"\n"
            ]]
        );
        assert_eq!(words("echo a\\\nb"), vec![vec!["echo", "ab"]]);
        assert_eq!(words("echo '' \"\""), vec![vec!["echo", "", ""]]);
        assert_eq!(words("echo a # comment ; b"), vec![vec!["echo", "a"]]);
        assert_eq!(words("echo a#b"), vec![vec!["echo", "a#b"]]);
        assert_eq!(
            words("echo $HOME ${PATH}x"),
            vec![vec!["echo", "<HOME>", "<PATH>x"]]
        );
        assert_eq!(words("echo $ 5$ '$?'"), vec![vec!["echo", "$", "5$", "$?"]]);
    }

    #[test]
    fn separators_split_commands() {
        let cmds = parse("a; b && c || d\ne;").unwrap();
        let conns: Vec<Conn> = cmds.iter().map(|c| c.conn).collect();
        assert_eq!(
            conns,
            [
                Conn::Always,
                Conn::Always,
                Conn::IfOk,
                Conn::IfFailed,
                Conn::Always
            ]
        );
        assert!(parse("a &&\n b").is_ok(), "a newline may follow &&");
        assert!(parse("\n\n  \n").unwrap().is_empty());
    }

    #[test]
    fn bad_syntax_is_refused_not_guessed() {
        for (src, want) in [
            ("; echo", "';' unexpected"),
            ("echo a;;", "';' unexpected"),
            ("&& echo", "'&&' unexpected"),
            ("echo a ||", "unexpected end of script"),
            ("echo 'a", "no closing quote"),
            ("echo \"a", "no closing quote"),
            ("ls | grep x", "'|' (pipes)"),
            ("echo a > /x", "redirection"),
            ("sleep 1 &", "background"),
            ("echo $(id)", "command substitution"),
            ("echo `id`", "command substitution"),
            ("(echo a)", "subshells"),
            ("echo ${a-b}", "bad substitution"),
        ] {
            let err = parse(src).unwrap_err();
            assert!(err.contains(want), "{src}: {err}");
        }
    }
}
