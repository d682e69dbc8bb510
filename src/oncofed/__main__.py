from oncofed.cli import app

app()
