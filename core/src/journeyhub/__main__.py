from journeyhub.cli import app

app(prog_name="journeyhub")
