// One log record as a table row: time, level, source, a clickable execution id, the message
// (folded when very long) and a badge on lines the agent truncated.

const LONG_MESSAGE = 600; // characters; longer messages are folded to a few lines until clicked

function cell(className, text) {
  const td = document.createElement("td");
  td.className = className;
  if (text !== undefined) td.textContent = text;
  return td;
}

export function row(record) {
  const tr = document.createElement("tr");
  tr.dataset.id = record.id;
  tr.className = `lvl-${record.level}`;
  const time = record.time || "";
  const timeCell = cell("time", `${time.slice(0, 10)} ${time.slice(11, 23)}`);
  timeCell.title = time;
  tr.append(timeCell, cell("level", record.level));
  // The server's own pod events (stream "system") belong to the pod, not to a container.
  tr.append(cell("source", record.container ? `${record.pod}/${record.container}` : record.pod));
  const exec = cell("execution");
  if (record.executionId) {
    const link = document.createElement("a");
    link.href = "#";
    link.className = "execution";
    link.textContent = record.executionId;
    link.title = "show only this execution";
    link.dataset.execution = record.executionId;
    exec.append(link);
  }
  tr.append(exec);
  const message = cell("message");
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = record.message;
  if (record.message.length > LONG_MESSAGE) {
    text.classList.add("folded");
    text.title = `${record.message.length} characters: click to unfold`;
  }
  message.append(text);
  if (record.truncated) {
    tr.classList.add("truncated");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "truncated";
    badge.title = "longer than the workload's maxLineBytes: the end of the line was cut";
    message.append(badge);
  }
  tr.append(message);
  return tr;
}
