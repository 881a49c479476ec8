// The demo bank page's buttons open the chat widget (a file, not inline: the page's CSP allows only 'self').
for (const id of ["ask-assistant", "ask-assistant-2"]) {
  document.getElementById(id).addEventListener("click", () => window.KestrelChat && window.KestrelChat.open());
}
