"""The start screen: pick a program and a device; nothing moves until the run screen's go."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from retrotread.errors import RetrotreadError
from retrotread.program import Program, ProgramError, find_program, format_duration
from retrotread.tui.devices import DeviceChoice, Scanner
from retrotread.tui.messages import DevicesFound
from retrotread.tui.widgets.progress import KIND_COLOURS
from retrotread.units import format_number

if TYPE_CHECKING:
    from retrotread.tui.app import ConsoleApp

log = logging.getLogger(__name__)


def program_line(program: Program) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(program.name, style="bold")
    text.append(f"  {format_duration(program.total_s)}", style="dim")
    return text


def program_preview(program: Program) -> Table:
    """One row per block: what, how long, how fast (the heading carries the totals)."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True, min_width=9)
    table.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
    table.add_column(justify="right", no_wrap=True, min_width=4)
    table.add_column(no_wrap=True)
    for step in program.steps:
        block = step.block
        speed = "paused" if block.speed is None else f"{format_number(block.speed.mph)} mph"
        table.add_row(
            Text(step.kind.label, style=f"bold {KIND_COLOURS[step.kind]}"),
            step.title,
            format_duration(step.duration_s),
            f"{speed} {format_number(block.incline.value, 1)}%",
        )
    return table


def program_heading(program: Program) -> Text:
    text = Text()
    text.append(program.name, style="bold")
    text.append(
        f" · {format_duration(program.total_s)} total · "
        f"{format_duration(program.retro_s)} retro · {len(program.steps)} blocks\n"
    )
    text.append(program.description.split(". ")[0].split(": ")[0], style="dim")
    return text


class StartScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "start", "Start"),
        Binding("r", "scan", "Scan"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(
        self,
        programs: Sequence[Program],
        devices: Sequence[DeviceChoice],
        *,
        device_url: str,
        scanner: Scanner | None,
        program: Program | None = None,
    ) -> None:
        super().__init__()
        self.programs = list(programs)
        if program is not None and program not in self.programs:
            self.programs.insert(0, program)
        self.program = program or (self.programs[0] if self.programs else None)
        self.devices = list(devices)
        self.device_url = device_url
        self.scanner = scanner
        self.scanning = False

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static("retrotread · operator console", id="start-title")
        with Horizontal(id="start-main"):
            with Vertical(id="program-column"):
                yield Label("Program", classes="heading")
                yield OptionList(*self._program_options(), id="programs")
                yield Input(
                    placeholder="or a program file (.toml) + enter",
                    id="program-file",
                    compact=True,
                )
            with Vertical(id="preview-column"):
                yield Static("", id="preview-heading")
                with VerticalScroll(id="preview-scroll"):
                    yield Static("", id="preview")
        with Horizontal(id="start-device"):
            with Vertical(id="device-column"):
                yield Label("Device", classes="heading")
                yield OptionList(*self._device_options(), id="devices")
            with Vertical(id="device-side"):
                yield Label("Device URL (edit for a real treadmill)", classes="heading")
                yield Input(self.device_url, id="device-url", compact=True)
                with Horizontal(id="start-buttons"):
                    scan = Button("Scan (r)", id="scan", compact=True)
                    scan.disabled = self.scanner is None
                    scan.tooltip = (
                        "look for treadmills nearby"
                        if self.scanner
                        else "no scanner is installed: type a device URL"
                    )
                    yield scan
                    yield Button("Start (g)", id="start", variant="success", compact=True)
                yield Static("", id="start-message", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        programs = self.query_one("#programs", OptionList)
        if self.program is not None:
            programs.highlighted = self.programs.index(self.program)
            self._preview(self.program)
        urls = [device.url for device in self.devices]
        devices = self.query_one("#devices", OptionList)
        devices.highlighted = urls.index(self.device_url) if self.device_url in urls else None
        programs.focus()

    def _program_options(self) -> list[Option]:
        return [Option(program_line(p), id=f"program-{i}") for i, p in enumerate(self.programs)]

    def _device_options(self) -> list[Option]:
        options = []
        for index, device in enumerate(self.devices):
            text = Text(device.label, no_wrap=True, overflow="ellipsis")
            options.append(Option(text, id=f"device-{index}"))
        return options

    # -- choosing -----------------------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        index = event.option_index
        if event.option_list.id == "programs" and 0 <= index < len(self.programs):
            self.program = self.programs[index]
            self._preview(self.program)
        elif event.option_list.id == "devices" and 0 <= index < len(self.devices):
            self.device_url = self.devices[index].url
            self.query_one("#device-url", Input).value = self.device_url

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "programs":
            self.query_one("#devices", OptionList).focus()
        else:
            self.query_one("#start", Button).focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "program-file":
            self._load_file(event.value.strip())
        elif event.input.id == "device-url":
            self.device_url = event.value.strip()
            await self.action_start()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "device-url":
            self.device_url = event.value.strip()

    def _load_file(self, path: str) -> None:
        if not path:
            return
        try:
            program = find_program(path)
        except ProgramError as err:
            self._show_problems(path, err)
            return
        self.programs.insert(0, program)
        programs = self.query_one("#programs", OptionList)
        programs.clear_options()
        programs.add_options(self._program_options())
        programs.highlighted = 0
        self.program = program
        self._preview(program)
        self._say(f"loaded {path}")

    def _show_problems(self, path: str, error: ProgramError) -> None:
        """Every mistake in a program file where the preview goes (it scrolls): the message
        line under the buttons holds only the first one or two. The file is named once, in
        the heading; each mistake by its line (as :meth:`ProgramError.lines` says them)."""
        count = len(error.issues)
        heading = Text()
        heading.append(f"{error.source} cannot be played", style="bold")
        heading.append(f": {count} problem{'s' if count != 1 else ''}, fix and load it again")
        self.query_one("#preview-heading", Static).update(heading)
        problems = Text(style="bold red")
        for number, issue in enumerate(error.issues):
            problems.append("\n" if number else "")
            problems.append(f"line {issue.line}: " if issue.line else "")
            problems.append(issue.message)
        self.query_one("#preview", Static).update(problems)
        self._say(f"{path}: {count} problem{'s' if count != 1 else ''} (listed above)", error=True)

    def _preview(self, program: Program) -> None:
        self.query_one("#preview-heading", Static).update(program_heading(program))
        self.query_one("#preview", Static).update(program_preview(program))

    def _say(self, text: str, *, error: bool = False) -> None:
        message = self.query_one("#start-message", Static)
        message.update(text)
        message.set_class(error, "-error")

    # -- scanning -----------------------------------------------------------------------------

    def action_scan(self) -> None:
        if self.scanner is None or self.scanning:
            return
        self.scanning = True
        self.query_one("#scan", Button).disabled = True
        self._say("scanning for treadmills ...")
        self.run_worker(self._scan(self.scanner), exclusive=True, group="scan")

    async def _scan(self, scanner: Scanner) -> None:
        try:
            found = await scanner()
        except Exception as err:  # a scan is optional: report it, never take the console down
            log.warning("scan failed", exc_info=True)
            self.post_message(DevicesFound((), str(err) or type(err).__name__))
        else:
            self.post_message(DevicesFound(found))

    def on_devices_found(self, message: DevicesFound) -> None:
        self.scanning = False
        self.query_one("#scan", Button).disabled = False
        if message.error:
            self._say(f"scan failed: {message.error}", error=True)
            return
        known = {device.url for device in self.devices}
        new = [device for device in message.devices if device.url not in known]
        self.devices.extend(new)
        devices = self.query_one("#devices", OptionList)
        devices.clear_options()
        devices.add_options(self._device_options())
        self._say(f"found {len(message.devices)} treadmill(s)")

    # -- starting -----------------------------------------------------------------------------

    async def action_start(self) -> None:
        if self.program is None:
            self._say("pick a program first", error=True)
            return
        if not self.device_url:
            self._say("pick a device or type its URL", error=True)
            return
        try:
            self.console.start_session(self.program, self.device_url)
        except RetrotreadError as err:
            self._say(str(err), error=True)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            await self.action_start()
        elif event.button.id == "scan":
            self.action_scan()
