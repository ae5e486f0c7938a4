//! A container's stdin for `kubectl attach -i` (and so `kubectl run -it`): the keeper gives
//! a container whose spec asks for `stdin` a named pipe as its stdin ([`keeper::Stdin`]);
//! an attach writes to it while its output is served from the log as it is written. With
//! `stdinOnce` the node agent holds the pipe's only writer from the start and hands it to the
//! first attach: when that attach's stdin ends, the command reads the end of its stdin (a
//! shell on a terminal gets ^D from `script` and exits), and later attaches get no stdin.

use tokio::net::unix::pipe;

use super::super::exec::{ExecRequest, ExecSession};
use super::super::{ContainerConfig, ContainerState, Runtime, RuntimeError, attach};
use super::ProcessRuntime;
use super::keeper::{self, Pipes};

/// What an attach can do with a container's stdin.
#[derive(Debug)]
pub(super) enum StdinState {
    /// The spec asks for no stdin (or the container has not started).
    Absent,
    /// The keeper holds the pipe open: each attach opens a writer of its own.
    Held,
    /// `stdinOnce`: the only writer, until the first attach takes it.
    Once(pipe::Sender),
    /// `stdinOnce`, already taken: the command's stdin has ended or will with that attach.
    Spent,
}

impl StdinState {
    /// The state of a container started with `input`, opening the agent's writer first when
    /// `stdinOnce` (the command's stdin waits for a writer).
    pub(super) fn open(input: keeper::Stdin, pipes: &Pipes) -> std::io::Result<StdinState> {
        Ok(match input {
            keeper::Stdin::Null => StdinState::Absent,
            keeper::Stdin::Held => StdinState::Held,
            keeper::Stdin::Once => StdinState::Once(pipes.stdin_holder()?),
        })
    }

    /// The state of a container found again after the agent restarted: a `stdinOnce` writer
    /// ended with the agent that held it.
    pub(super) fn after_restart(config: &ContainerConfig) -> StdinState {
        match (config.stdin, config.stdin_once) {
            (false, _) => StdinState::Absent,
            (true, false) => StdinState::Held,
            (true, true) => StdinState::Spent,
        }
    }
}

impl ProcessRuntime {
    /// Joins container `id`: its output from its log, and its stdin when asked for.
    pub(super) async fn attach_session(
        &self,
        id: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        let (name, log, running, writer) = self.with(|inner| {
            let proc = inner
                .containers
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))?;
            let running = matches!(proc.state, ContainerState::Running { .. });
            let writer = if request.stdin && running {
                Some(match &proc.stdin {
                    StdinState::Absent => Err(RuntimeError::Failed(format!(
                        "container {} was started without stdin (its spec does not set stdin: true)",
                        proc.config.name
                    ))),
                    StdinState::Spent => Err(RuntimeError::Failed(format!(
                        "the stdin of container {} was closed after its first attach (stdinOnce)",
                        proc.config.name
                    ))),
                    StdinState::Held => proc.pipes.stdin_writer().map_err(|e| {
                        RuntimeError::Failed(format!("opening the stdin of {}: {e}", proc.config.name))
                    }),
                    StdinState::Once(_) => match std::mem::replace(&mut proc.stdin, StdinState::Spent) {
                        StdinState::Once(writer) => Ok(writer),
                        _ => Err(RuntimeError::Failed("the stdin was taken".into())),
                    },
                })
            } else {
                None
            };
            Ok::<_, RuntimeError>((proc.config.name.clone(), proc.log.clone(), running, writer))
        })??;
        if !running {
            return Err(RuntimeError::Failed(format!(
                "cannot attach to container {name}: it is not running"
            )));
        }
        let writer = writer.transpose()?;
        let mut session = attach::from_log(log, self.changed(id), request.tty).await;
        if let Some(writer) = writer {
            session.stdin = Some(Box::new(writer));
        }
        Ok(session)
    }
}
